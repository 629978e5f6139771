//! A small builder over quick-xml's [`Writer`] for EC2 Query answers: every text goes through
//! quick-xml's escaping, elements close in order.

use std::collections::BTreeMap;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// The EC2 API namespace of every answer.
pub const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

pub struct Xml {
    w: Writer<Vec<u8>>,
    open: Vec<String>,
}

impl Xml {
    fn ev(&mut self, e: Event<'_>) {
        // A Vec<u8> sink cannot fail.
        let _ = self.w.write_event(e);
    }

    /// `<?xml …?><{action}Response xmlns=…><requestId>…</requestId>`.
    pub fn response(action: &str, request_id: &str) -> Xml {
        let mut x = Xml { w: Writer::new(Vec::new()), open: Vec::new() };
        x.ev(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        let root = format!("{action}Response");
        x.ev(Event::Start(BytesStart::new(root.as_str()).with_attributes([("xmlns", NS)])));
        x.open.push(root);
        x.leaf("requestId", request_id);
        x
    }

    /// A document without the EC2 namespace (the error envelope).
    pub fn bare(root: &str) -> Xml {
        let mut x = Xml { w: Writer::new(Vec::new()), open: Vec::new() };
        x.ev(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        x.open(root);
        x
    }

    pub fn open(&mut self, name: &str) {
        self.ev(Event::Start(BytesStart::new(name)));
        self.open.push(name.to_string());
    }

    pub fn close(&mut self) {
        if let Some(name) = self.open.pop() {
            self.ev(Event::End(BytesEnd::new(name)));
        }
    }

    /// `<name>text</name>` (text escaped).
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.ev(Event::Start(BytesStart::new(name)));
        self.ev(Event::Text(BytesText::new(text)));
        self.ev(Event::End(BytesEnd::new(name)));
    }

    pub fn leaf_opt(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(name, t);
        }
    }

    pub fn bool(&mut self, name: &str, v: bool) {
        self.leaf(name, if v { "true" } else { "false" });
    }

    /// `<name><item>…</item>…</name>`, each item written by `f`.
    pub fn list<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut f: impl FnMut(&mut Xml, T),
    ) {
        self.open(name);
        for it in items {
            self.open("item");
            f(self, it);
            self.close();
        }
        self.close();
    }

    /// `<name><item>s</item>…</name>` for plain strings.
    pub fn strings<S: AsRef<str>>(&mut self, name: &str, items: impl IntoIterator<Item = S>) {
        self.open(name);
        for s in items {
            self.leaf("item", s.as_ref());
        }
        self.close();
    }

    /// `<tagSet>` with `key`/`value` items; omitted when there are none (as AWS does).
    pub fn tag_set(&mut self, tags: Option<&BTreeMap<String, String>>) {
        let Some(tags) = tags.filter(|t| !t.is_empty()) else { return };
        self.list("tagSet", tags, |x, (k, v)| {
            x.leaf("key", k);
            x.leaf("value", v);
        });
    }

    /// `<return>true</return>`.
    pub fn ret_true(&mut self) {
        self.leaf("return", "true");
    }

    /// Closes every open element and returns the document.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        String::from_utf8_lossy(&self.w.into_inner()).into_owned()
    }
}
