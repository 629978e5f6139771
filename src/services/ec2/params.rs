//! The EC2 Query form fields: plain values, flattened lists (`RouteTableId.1`), filters
//! (`Filter.N.Name`, `Filter.N.Value.M`), tag specifications and tags.

use std::collections::BTreeMap;

use super::Ec2Error;

pub struct Params<'a> {
    list: &'a [(String, String)],
}

/// One `Filter.N`: a name and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
    /// A documented name about what the lab does not model: it matches nothing.
    pub unmodelled: bool,
}

/// One `TagSpecification.N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSpec {
    pub resource_type: String,
    pub tags: Vec<(String, String)>,
}

impl<'a> Params<'a> {
    pub fn new(list: &'a [(String, String)]) -> Params<'a> {
        Params { list }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.list.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &str) -> Result<&'a str, Ec2Error> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(Ec2Error::new(
                "MissingParameter",
                format!("The request must contain the parameter {name}"),
            )),
        }
    }

    /// `true` / `false`; anything else is InvalidParameterValue.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Ec2Error> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(Ec2Error::invalid(format!(
                "Value ({v}) for parameter {name} is invalid. Expected a boolean"
            ))),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, Ec2Error> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Ec2Error::invalid(format!(
                    "Value ({v}) for parameter {name} is invalid. Expected an integer"
                ))
            }),
        }
    }

    /// The fields `prefix.N.rest` grouped by N (in numeric order): rest → value.
    fn groups(&self, prefix: &str) -> BTreeMap<u32, Vec<(&'a str, &'a str)>> {
        let mut out: BTreeMap<u32, Vec<(&str, &str)>> = BTreeMap::new();
        for (k, v) in self.list {
            let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let (n, tail) = rest.split_once('.').unwrap_or((rest, ""));
            if let Ok(n) = n.parse::<u32>() {
                out.entry(n).or_default().push((tail, v.as_str()));
            }
        }
        out
    }

    /// The values of the flattened list `prefix.1`, `prefix.2`, … in index order.
    pub fn indexed(&self, prefix: &str) -> Vec<&'a str> {
        self.groups(prefix)
            .into_values()
            .filter_map(|g| g.into_iter().find(|(t, _)| t.is_empty()).map(|(_, v)| v))
            .collect()
    }

    /// The values of `prefix.M.field` in index order, each with `prefix.M.extra` beside it
    /// (e.g. `IpPermissions.1.IpRanges`, `CidrIp` and its `Description`).
    pub fn indexed_field_with(
        &self,
        prefix: &str,
        field: &str,
        extra: &str,
    ) -> Vec<(&'a str, Option<&'a str>)> {
        self.groups(prefix)
            .into_values()
            .filter_map(|g| {
                let value = g.iter().find(|(t, _)| *t == field).map(|(_, v)| *v)?;
                Some((value, g.iter().find(|(t, _)| *t == extra).map(|(_, v)| *v)))
            })
            .collect()
    }

    /// Whether any field starts with `prefix.` or a later index of the same list (used to
    /// spot a missing member of `IpPermissions.N`).
    pub fn indexed_prefix_exists(&self, prefix: &str) -> bool {
        let Some((list, n)) = prefix.rsplit_once('.') else { return false };
        let Ok(n) = n.parse::<u32>() else { return false };
        self.groups(list).range(n..).next().is_some()
    }

    /// `indexed` as owned strings.
    pub fn indexed_owned(&self, prefix: &str) -> Vec<String> {
        self.indexed(prefix).into_iter().map(str::to_string).collect()
    }

    pub fn filters(&self, known: &[&str]) -> Result<Vec<Filter>, Ec2Error> {
        self.filters_with(known, &[])
    }

    /// [`Params::filters`], also taking the names in `unmodelled`: names the action documents
    /// about what the lab does not model (EBS volumes, IPv6, key pairs …). EC2 accepts them;
    /// here each matches nothing, as nothing in the lab has such a value (README, Decisions).
    pub fn filters_with(
        &self,
        known: &[&str],
        unmodelled: &[&str],
    ) -> Result<Vec<Filter>, Ec2Error> {
        let mut out = Vec::new();
        for (n, fields) in self.groups("Filter") {
            let name = fields.iter().find(|(t, _)| *t == "Name").map(|(_, v)| v.to_string());
            let Some(name) = name else {
                return Err(Ec2Error::new(
                    "MissingParameter",
                    format!("The request must contain the parameter Filter.{n}.Name"),
                ));
            };
            let mut values: Vec<(u32, String)> = fields
                .iter()
                .filter_map(|(t, v)| {
                    t.strip_prefix("Value.")
                        .and_then(|i| i.parse().ok())
                        .map(|i| (i, v.to_string()))
                })
                .collect();
            values.sort();
            let unmodelled = unmodelled.contains(&name.as_str());
            out.push(Filter {
                name,
                values: values.into_iter().map(|(_, v)| v).collect(),
                unmodelled,
            });
        }
        // EC2 refuses a filter name the action does not define, whatever the data ("The filter
        // 'bogus' is invalid", InvalidParameterValue), with no resource to match or after
        // another filter already excluded everything.
        if let Some(f) = out.iter().find(|f| !f.unmodelled && !super::filter::known(&f.name, known))
        {
            return Err(Ec2Error::invalid(format!("The filter '{}' is invalid", f.name)));
        }
        Ok(out)
    }

    /// `Tag.N.Key` / `Tag.N.Value` (value optional, as DeleteTags allows).
    pub fn tags(&self, prefix: &str) -> Result<Vec<(String, Option<String>)>, Ec2Error> {
        let mut out = Vec::new();
        for (n, fields) in self.groups(prefix) {
            let key = fields.iter().find(|(t, _)| *t == "Key").map(|(_, v)| v.to_string());
            let value = fields.iter().find(|(t, _)| *t == "Value").map(|(_, v)| v.to_string());
            let Some(key) = key else {
                return Err(Ec2Error::new(
                    "MissingParameter",
                    format!("The request must contain the parameter {prefix}.{n}.Key"),
                ));
            };
            out.push((key, value));
        }
        Ok(out)
    }

    pub fn tag_specs(&self) -> Result<Vec<TagSpec>, Ec2Error> {
        let mut out = Vec::new();
        for (n, fields) in self.groups("TagSpecification") {
            let resource_type =
                fields.iter().find(|(t, _)| *t == "ResourceType").map(|(_, v)| v.to_string());
            let Some(resource_type) = resource_type else {
                return Err(Ec2Error::new(
                    "MissingParameter",
                    format!(
                        "The request must contain the parameter TagSpecification.{n}.ResourceType"
                    ),
                ));
            };
            let sub: Vec<(String, String)> =
                fields.iter().map(|(t, v)| (t.to_string(), v.to_string())).collect();
            let tags = Params::new(&sub)
                .tags("Tag")?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect();
            out.push(TagSpec { resource_type, tags });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn lists_filters_tags() {
        let list = p(&[
            ("RouteTableId.2", "rtb-2"),
            ("RouteTableId.1", "rtb-1"),
            ("RouteTableId.10", "rtb-10"),
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.2", "b"),
            ("Filter.1.Value.1", "a"),
            ("TagSpecification.1.ResourceType", "vpc"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "x"),
        ]);
        let ps = Params::new(&list);
        assert_eq!(ps.indexed("RouteTableId"), ["rtb-1", "rtb-2", "rtb-10"]);
        assert_eq!(
            ps.filters(&["vpc-id"]).unwrap(),
            [Filter {
                name: "vpc-id".into(),
                values: vec!["a".into(), "b".into()],
                unmodelled: false
            }]
        );
        let ts = ps.tag_specs().unwrap();
        assert_eq!(ts[0].resource_type, "vpc");
        assert_eq!(ts[0].tags, [("Name".to_string(), "x".to_string())]);
    }
}
