//! Durable on-disk object storage behind the S3 stub (no HTTP here).
//!
//! Layout under the store root:
//!
//! ```text
//! root/buckets/<bucket>/bucket.json                 bucket metadata
//! root/buckets/<bucket>/objects/<name>.meta          object metadata sidecar (JSON)
//! root/buckets/<bucket>/objects/<name>.<ver>.data    object body
//! root/buckets/<bucket>/objects/.tmp-<ver>           in-flight writes (ignored, removed on open)
//! root/buckets/<bucket>/uploads/<id>/upload.json    a multipart upload in progress
//! root/buckets/<bucket>/uploads/<id>/p<N>.<md5>.<ver>.part   an acknowledged part
//! ```
//!
//! Upload ids are generated here (lowercase hex) and checked to be hex before they name a path.
//! A part is written to a temp file in its upload directory, fsynced and renamed; its name
//! carries its part number and MD5, so a part either exists completely or not at all.
//!
//! `<name>` is `k` + hex(key bytes) for keys up to 100 bytes, otherwise `h` + hex(md5(key)),
//! so no key can ever name a path outside the objects directory. `<ver>` is unique per write.
//!
//! Durability protocol of a PUT: the body goes to a temp file which is fsynced and renamed
//! to a fresh `<name>.<ver>.data`, the directory is fsynced; then the sidecar (which names
//! that data file) is written to a temp file, fsynced, renamed over `<name>.meta` and the
//! directory is fsynced again. Only then is the PUT acknowledged and the previous body file
//! removed. A crash at any point leaves either the old object or the new one, never metadata
//! pointing at a missing or partial body; an object without a sidecar does not exist.
//! Leftover temp files and unreferenced body files are removed by [`Store::open`].

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

use super::checksum::{Algorithm, Checksum, Hasher, Kind};
use serde::{Deserialize, Serialize};

use crate::model::ACCOUNT_ID;
/// Longest key S3 accepts, in bytes.
pub use crate::model::MAX_KEY_LEN;
/// Content type S3 assigns when a PUT does not name one.
pub const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";
/// Keys up to this many bytes are hex-encoded into the file name; longer ones are hashed.
const MAX_DIRECT_KEY_LEN: usize = 100;
const TMP_PREFIX: &str = ".tmp-";

/// Errors of the object store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bucket does not exist.
    #[error("no such bucket: {0}")]
    NoSuchBucket(String),
    /// The key does not exist in the bucket.
    #[error("no such key: {0}")]
    NoSuchKey(String),
    /// The bucket name breaks S3's naming rules.
    #[error("invalid bucket name: {0}")]
    InvalidBucketName(String),
    /// The bucket already exists, in another region.
    #[error("bucket already exists: {0}")]
    BucketAlreadyExists(String),
    /// The bucket already exists in the same region.
    #[error("bucket already owned by you: {0}")]
    BucketAlreadyOwnedByYou(String),
    /// The key is empty.
    #[error("invalid key: empty")]
    InvalidKey,
    /// The key is longer than 1024 bytes.
    #[error("key too long: {0} bytes")]
    KeyTooLong(usize),
    /// The body's MD5 differs from the one the client announced.
    #[error("content md5 mismatch")]
    BadDigest,
    /// The body's flexible checksum differs from the one the client sent.
    #[error("{} checksum mismatch", .0.name())]
    BadChecksum(Algorithm),
    /// The multipart upload does not exist (never did, completed or aborted).
    #[error("no such upload: {0}")]
    NoSuchUpload(String),
    /// A part named in a CompleteMultipartUpload is missing or its ETag differs.
    #[error("invalid part {0}")]
    InvalidPart(u32),
    /// The parts of a CompleteMultipartUpload are not in ascending order.
    #[error("invalid part order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than 5 MiB: its number, size and ETag.
    #[error("part {part} too small ({size} bytes)")]
    EntityTooSmall { part: u32, size: u64, etag: String },
    /// The bucket still holds objects or multipart uploads.
    #[error("bucket not empty: {0}")]
    BucketNotEmpty(String),
    /// A conditional write's condition (`If-None-Match` or `If-Match`) did not hold.
    #[error("precondition {0} failed")]
    PreconditionFailed(&'static str),
    /// A filesystem or metadata encoding error.
    #[error("io error: {0}")]
    Io(#[from] io::Error),
}

/// Metadata of a bucket, stored in `bucket.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketMeta {
    pub name: String,
    pub region: String,
    pub policy: Option<String>,
    /// Creation time, unix seconds.
    pub created: u64,
    /// The CreateBucket `LocationConstraint` when it is not the region's own name (`EU`, which
    /// GetBucketLocation answers as given); absent from a bucket.json of an older vpcsim and
    /// not written otherwise, so such files keep their format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_constraint: Option<String>,
    /// The account that owns the bucket: the lab's ([`ACCOUNT_ID`]), or AWS's for the buckets
    /// AWS keeps itself ([`crate::model::AWS_ACCOUNT_ID`]). Written only when it is not the
    /// lab's, so a bucket.json without it (an older vpcsim's) is the lab's and the lab's keep
    /// their format.
    #[serde(default = "lab_account", skip_serializing_if = "is_lab_account")]
    pub owner: String,
}

fn lab_account() -> String {
    ACCOUNT_ID.to_string()
}

fn is_lab_account(owner: &String) -> bool {
    owner == ACCOUNT_ID
}

/// Metadata of an object, stored in its sidecar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
    /// Quoted hex MD5 of the body, e.g. `"d41d8cd98f00b204e9800998ecf8427e"`.
    pub etag: String,
    pub size: u64,
    pub content_type: String,
    /// Unix seconds.
    pub last_modified: u64,
    /// User metadata (`x-amz-meta-*`), names lower-case without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_meta: BTreeMap<String, String>,
    /// The standard headers stored with the object (see [`Metadata::headers`]). Absent from
    /// sidecars written before they were kept: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body's flexible checksum, as computed when it was written (the client's algorithm,
    /// else CRC64NVME). Absent from sidecars written before checksums were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// The sizes of the parts of an object assembled from a multipart upload, in order (GET
    /// `partNumber`); empty for one written whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_sizes: Vec<u64>,
    /// Absent from sidecars written before storage classes were kept: STANDARD.
    #[serde(default, skip_serializing_if = "StorageClass::is_standard")]
    pub storage_class: StorageClass,
    /// The object's tag set (PutObjectTagging, `x-amz-tagging`), by key. Absent from sidecars
    /// written before tags were kept: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// For an object assembled from an upload created with a checksum algorithm: each part's
    /// own checksum (base64, that algorithm), in order, as a `partNumber` read returns it.
    /// Empty otherwise, and in sidecars written before they were kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_checksums: Vec<String>,
}

/// An object's storage class (`x-amz-storage-class`), as S3 names it. OUTPOSTS, SNOW and
/// EXPRESS_ONEZONE (other kinds of storage than a region's buckets) are not among them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageClass {
    #[default]
    Standard,
    ReducedRedundancy,
    StandardIa,
    OnezoneIa,
    IntelligentTiering,
    Glacier,
    DeepArchive,
    GlacierIr,
}

impl StorageClass {
    const ALL: [StorageClass; 8] = [
        StorageClass::Standard,
        StorageClass::ReducedRedundancy,
        StorageClass::StandardIa,
        StorageClass::OnezoneIa,
        StorageClass::IntelligentTiering,
        StorageClass::Glacier,
        StorageClass::DeepArchive,
        StorageClass::GlacierIr,
    ];

    /// S3's name, e.g. `STANDARD_IA`.
    pub fn name(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::ReducedRedundancy => "REDUCED_REDUNDANCY",
            StorageClass::StandardIa => "STANDARD_IA",
            StorageClass::OnezoneIa => "ONEZONE_IA",
            StorageClass::IntelligentTiering => "INTELLIGENT_TIERING",
            StorageClass::Glacier => "GLACIER",
            StorageClass::DeepArchive => "DEEP_ARCHIVE",
            StorageClass::GlacierIr => "GLACIER_IR",
        }
    }

    /// The class S3 names `name` (exactly, upper case), if it is one of these.
    pub fn from_name(name: &str) -> Option<StorageClass> {
        StorageClass::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn is_standard(&self) -> bool {
        *self == StorageClass::Standard
    }

    /// Archived: the body cannot be read without a restore (GLACIER, DEEP_ARCHIVE).
    pub fn is_archived(self) -> bool {
        matches!(self, StorageClass::Glacier | StorageClass::DeepArchive)
    }
}

/// What a writer says about an object besides its body and Content-Type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Standard headers S3 stores and returns (Cache-Control, Content-Disposition,
    /// Content-Encoding, Content-Language, Expires), by lower-case name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// User metadata (`x-amz-meta-*`), names lower-case without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    /// `x-amz-storage-class`.
    #[serde(default, skip_serializing_if = "StorageClass::is_standard")]
    pub storage_class: StorageClass,
    /// The tag set (`x-amz-tagging`), by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// The object's metadata as a writer gave it.
    pub fn metadata(&self) -> Metadata {
        Metadata {
            headers: self.headers.clone(),
            user: self.user_meta.clone(),
            storage_class: self.storage_class,
            tags: self.tags.clone(),
        }
    }
}

/// Smallest size of a multipart part other than the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Highest multipart part number.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// A multipart upload in progress, stored in `upload.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadMeta {
    pub upload_id: String,
    pub key: String,
    pub content_type: Option<String>,
    #[serde(default)]
    pub user_meta: BTreeMap<String, String>,
    /// Standard headers for the object (see [`Metadata::headers`]); none in uploads created
    /// before they were kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Unix seconds.
    pub initiated: u64,
    /// The checksum algorithm and type the upload was created with (`x-amz-checksum-algorithm`,
    /// `x-amz-checksum-type`); none: the object gets a full-object CRC64NVME.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<(Algorithm, Kind)>,
    /// The object's storage class; STANDARD in uploads created before classes were kept.
    #[serde(default, skip_serializing_if = "StorageClass::is_standard")]
    pub storage_class: StorageClass,
    /// The object's tag set, applied when the upload completes; none in uploads created
    /// before tags were kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// What a CompleteMultipartUpload request says about checksums: the value it names for each
/// listed part (in the request's order), and for the whole object.
#[derive(Clone, Debug, Default)]
pub struct CompleteChecks {
    pub parts: Vec<Option<String>>,
    pub whole: Option<String>,
}

impl UploadMeta {
    /// The metadata the upload was created with (what the assembled object gets).
    pub fn metadata(&self) -> Metadata {
        Metadata {
            headers: self.headers.clone(),
            user: self.user_meta.clone(),
            storage_class: self.storage_class,
            tags: self.tags.clone(),
        }
    }
}

/// An acknowledged part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    pub number: u32,
    /// Quoted hex MD5 of the part.
    pub etag: String,
    pub size: u64,
    /// Unix seconds.
    pub last_modified: u64,
    /// The part's own checksum in the algorithm its upload was created with, as
    /// [`Store::list_parts`] gives it (ListParts shows it); `None` for an upload created
    /// without one, and from [`Store::commit_part`].
    pub checksum: Option<crate::services::checksum::Checksum>,
    file: PathBuf,
}

/// On-disk sidecar: the public metadata plus the body file it refers to.
#[derive(Serialize, Deserialize)]
struct Sidecar {
    #[serde(flatten)]
    meta: ObjectMeta,
    data: String,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListResult {
    pub contents: Vec<ObjectMeta>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// When truncated: the last key or common prefix returned; pass it as `start_after` to resume.
    pub next_token: Option<String>,
}

/// Durable object store rooted at a directory.
pub struct Store {
    root: PathBuf,
    buckets: RwLock<BTreeMap<String, BucketMeta>>,
    /// Serializes bucket creation/updates and the commit step of object writes/deletes.
    commit: Mutex<()>,
}

/// An in-flight object write: a temp file in the bucket's objects directory.
/// Feed it with [`ObjectWriter::write`] and make it visible with [`Store::commit_object`];
/// dropping it uncommitted removes the temp file.
pub struct ObjectWriter {
    bucket: String,
    key: String,
    dir: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    md5: Md5,
    size: u64,
    /// For a part writer: the upload id and part number.
    part: Option<(String, u32)>,
    /// What the key must hold when the write is committed.
    condition: Option<WriteCondition>,
    /// The body's flexible checksum so far, and the value the client sent for it.
    checksum: Hasher,
    expected_checksum: Option<String>,
    /// The object's checksum when it is not the body's (an assembled upload's composite one).
    final_checksum: Option<Checksum>,
    /// An assembled upload's part sizes.
    part_sizes: Vec<u64>,
    /// An assembled upload's part checksums (see [`ObjectMeta::part_checksums`]).
    part_checksums: Vec<String>,
}

/// A conditional write's condition, checked under the commit lock against the object the key
/// holds at that moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: the key holds no object (else `PreconditionFailed`).
    Absent,
    /// `If-Match: <etag>`: the key holds an object with one of these ETags (`*`: any);
    /// `NoSuchKey` without an object, `PreconditionFailed` for another ETag.
    EtagMatches(String),
}

impl ObjectWriter {
    /// Makes the commit of this write conditional.
    pub fn only_if(&mut self, condition: Option<WriteCondition>) {
        self.condition = condition;
    }

    /// Computes the body's flexible checksum with `algorithm` (instead of CRC64NVME); before
    /// the first write.
    pub fn checksum_with(&mut self, algorithm: Algorithm) {
        debug_assert_eq!(self.size, 0, "checksum algorithm chosen after a write");
        self.checksum = Hasher::new(algorithm);
    }

    /// The base64 value the client sent for the body's checksum (of the algorithm given to
    /// [`ObjectWriter::checksum_with`]): the commit fails with [`StoreError::BadChecksum`]
    /// if the body's differs, and nothing is stored.
    pub fn expect_checksum(&mut self, value: &str) {
        self.expected_checksum = Some(value.trim().to_string());
    }

    /// The body's checksum, checked against the client's value.
    fn checked_checksum(&mut self) -> Result<Checksum, StoreError> {
        let sum = self.final_checksum.take().unwrap_or_else(|| self.checksum.finish());
        match &self.expected_checksum {
            Some(want) if *want != sum.value => Err(StoreError::BadChecksum(sum.algorithm)),
            _ => Ok(sum),
        }
    }

    /// Appends body bytes.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let file =
            self.file.as_mut().ok_or_else(|| io::Error::other("object writer already finished"))?;
        file.write_all(data)?;
        self.md5.update(data);
        self.checksum.update(data);
        self.size += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Store {
    /// Opens (creating if needed) a store rooted at `root`, removing debris of interrupted writes.
    pub fn open(root: &Path) -> anyhow::Result<Store> {
        let buckets_dir = root.join("buckets");
        fs::create_dir_all(&buckets_dir)?;
        let mut buckets = BTreeMap::new();
        for entry in fs::read_dir(&buckets_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if !valid_bucket_name(name) || !entry.file_type()?.is_dir() {
                continue;
            }
            let meta_path = entry.path().join("bucket.json");
            let raw = match fs::read(&meta_path) {
                Ok(raw) => raw,
                // Interrupted creation: directory without metadata is no bucket.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("reading {}", meta_path.display()))
                    );
                }
            };
            let meta: BucketMeta = serde_json::from_slice(&raw).map_err(|e| {
                anyhow::anyhow!("{}: not bucket metadata: {e}", meta_path.display())
            })?;
            if meta.name != name {
                anyhow::bail!(
                    "bucket metadata {} names bucket {:?}",
                    meta_path.display(),
                    meta.name
                );
            }
            let objects = entry.path().join("objects");
            fs::create_dir_all(&objects)?;
            cleanup_objects_dir(&objects)?;
            cleanup_uploads_dir(&entry.path().join("uploads"))?;
            buckets.insert(meta.name.clone(), meta);
        }
        Ok(Store {
            root: root.to_path_buf(),
            buckets: RwLock::new(buckets),
            commit: Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join("buckets").join(bucket)
    }

    /// Objects directory of an existing bucket.
    fn objects_dir(&self, bucket: &str) -> Result<PathBuf, StoreError> {
        if self.bucket(bucket).is_none() {
            return Err(StoreError::NoSuchBucket(bucket.to_string()));
        }
        Ok(self.bucket_dir(bucket).join("objects"))
    }

    /// Creates a bucket; errors if its name is invalid or it exists already.
    pub fn create_bucket(
        &self,
        name: &str,
        region: &str,
        policy: Option<String>,
    ) -> Result<(), StoreError> {
        self.create_bucket_as(name, region, policy, None)
    }

    /// [`Store::create_bucket`], keeping the `LocationConstraint` it was asked with when that
    /// is not the region's name (see [`BucketMeta::location_constraint`]).
    pub fn create_bucket_as(
        &self,
        name: &str,
        region: &str,
        policy: Option<String>,
        location_constraint: Option<String>,
    ) -> Result<(), StoreError> {
        self.create(name, region, policy, location_constraint, ACCOUNT_ID)
    }

    /// [`Store::create_bucket`] for another account than the lab's (see [`BucketMeta::owner`]).
    pub fn create_bucket_owned(
        &self,
        name: &str,
        region: &str,
        policy: Option<String>,
        owner: &str,
    ) -> Result<(), StoreError> {
        self.create(name, region, policy, None, owner)
    }

    /// An existing bucket is `BucketAlreadyOwnedByYou` to the account that owns it (in any
    /// region), and `BucketAlreadyExists` to another account ("The requested bucket name is not
    /// available").
    fn create(
        &self,
        name: &str,
        region: &str,
        policy: Option<String>,
        location_constraint: Option<String>,
        owner: &str,
    ) -> Result<(), StoreError> {
        if !valid_bucket_name(name) {
            return Err(StoreError::InvalidBucketName(name.to_string()));
        }
        let _guard = lock(&self.commit);
        // A name taken by the caller's own account is its own, whatever region the bucket is
        // in: S3 answers BucketAlreadyOwnedByYou when a bucket one owns is created again from
        // another region too; BucketAlreadyExists is for a name another account holds.
        if let Some(existing) = self.bucket(name) {
            return Err(if existing.owner == owner {
                StoreError::BucketAlreadyOwnedByYou(name.to_string())
            } else {
                StoreError::BucketAlreadyExists(name.to_string())
            });
        }
        let dir = self.bucket_dir(name);
        // Debris of a deleted (or half-created) bucket must not reappear in the new one.
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(dir.join("objects"))?;
        let meta = BucketMeta {
            name: name.to_string(),
            region: region.to_string(),
            policy,
            created: now_secs(),
            location_constraint: location_constraint.filter(|c| c != region),
            owner: owner.to_string(),
        };
        write_bucket_meta(&dir, &meta)?;
        fsync_dir(&self.root.join("buckets"))?;
        self.buckets.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), meta);
        Ok(())
    }

    /// Metadata of a bucket, if it exists.
    pub fn bucket(&self, name: &str) -> Option<BucketMeta> {
        self.buckets.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// All buckets, sorted by name.
    pub fn buckets(&self) -> Vec<BucketMeta> {
        self.buckets.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Replaces (or with `None` removes) a bucket's policy document.
    pub fn set_bucket_policy(&self, name: &str, policy: Option<String>) -> Result<(), StoreError> {
        let _guard = lock(&self.commit);
        let mut meta =
            self.bucket(name).ok_or_else(|| StoreError::NoSuchBucket(name.to_string()))?;
        meta.policy = policy;
        write_bucket_meta(&self.bucket_dir(name), &meta)?;
        self.buckets.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), meta);
        Ok(())
    }

    /// Hands a bucket to another account (see [`BucketMeta::owner`]).
    pub fn set_bucket_owner(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let _guard = lock(&self.commit);
        let mut meta =
            self.bucket(name).ok_or_else(|| StoreError::NoSuchBucket(name.to_string()))?;
        meta.owner = owner.to_string();
        write_bucket_meta(&self.bucket_dir(name), &meta)?;
        self.buckets.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), meta);
        Ok(())
    }

    /// Starts a streamed object write.
    pub fn object_writer(&self, bucket: &str, key: &str) -> Result<ObjectWriter, StoreError> {
        check_key(key)?;
        let dir = self.objects_dir(bucket)?;
        let tmp = dir.join(format!("{TMP_PREFIX}{}", unique_id()));
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok(ObjectWriter {
            bucket: bucket.to_string(),
            key: key.to_string(),
            dir,
            tmp,
            file: Some(file),
            md5: Md5::new(),
            size: 0,
            part: None,
            condition: None,
            checksum: Hasher::default(),
            expected_checksum: None,
            final_checksum: None,
            part_sizes: Vec::new(),
            part_checksums: Vec::new(),
        })
    }

    /// Makes a streamed write durable and visible. `expected_md5` is the client's Content-MD5.
    pub fn commit_object(
        &self,
        w: ObjectWriter,
        content_type: Option<&str>,
        expected_md5: Option<[u8; 16]>,
    ) -> Result<ObjectMeta, StoreError> {
        self.commit_object_with(w, content_type, expected_md5, Metadata::default(), None)
    }

    /// [`Store::commit_object`] with standard headers and user metadata and, for assembled
    /// multipart objects, the ETag to record instead of the MD5 of the body.
    pub fn commit_object_with(
        &self,
        mut w: ObjectWriter,
        content_type: Option<&str>,
        expected_md5: Option<[u8; 16]>,
        metadata: Metadata,
        etag: Option<String>,
    ) -> Result<ObjectMeta, StoreError> {
        if w.part.is_some() {
            return Err(io::Error::other("part writer committed as an object").into());
        }
        let file =
            w.file.take().ok_or_else(|| io::Error::other("object writer already finished"))?;
        let tmp = w.tmp.clone();
        let result = self.commit_inner(&mut w, file, content_type, expected_md5, metadata, etag);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn commit_inner(
        &self,
        w: &mut ObjectWriter,
        file: File,
        content_type: Option<&str>,
        expected_md5: Option<[u8; 16]>,
        metadata: Metadata,
        etag: Option<String>,
    ) -> Result<ObjectMeta, StoreError> {
        let digest = std::mem::replace(&mut w.md5, Md5::new()).finalize();
        if let Some(expected) = expected_md5
            && expected[..] != digest[..]
        {
            return Err(StoreError::BadDigest);
        }
        let checksum = w.checked_checksum()?;
        file.sync_all()?;
        drop(file);
        let name = object_file_name(&w.key);
        let data_name = format!("{name}.{}.data", unique_id());
        fs::rename(&w.tmp, w.dir.join(&data_name))?;
        fsync_dir(&w.dir)?;
        let meta = ObjectMeta {
            key: w.key.clone(),
            etag: etag.unwrap_or_else(|| format!("\"{}\"", hex::encode(digest))),
            size: w.size,
            content_type: content_type
                .filter(|c| !c.is_empty())
                .unwrap_or(DEFAULT_CONTENT_TYPE)
                .to_string(),
            last_modified: now_secs(),
            user_meta: metadata.user,
            headers: metadata.headers,
            checksum: Some(checksum),
            part_sizes: std::mem::take(&mut w.part_sizes),
            storage_class: metadata.storage_class,
            tags: metadata.tags,
            part_checksums: std::mem::take(&mut w.part_checksums),
        };
        let sidecar = serde_json::to_vec(&Sidecar { meta: meta.clone(), data: data_name.clone() })
            .map_err(io::Error::other)?;
        let meta_path = w.dir.join(format!("{name}.meta"));
        let _guard = lock(&self.commit);
        if self.bucket(&w.bucket).is_none() {
            let _ = fs::remove_file(w.dir.join(&data_name));
            return Err(StoreError::NoSuchBucket(w.bucket.clone()));
        }
        let current = read_sidecar(&meta_path).ok().flatten().filter(|s| s.meta.key == w.key);
        if let Some(condition) = &w.condition {
            let refused = match (condition, &current) {
                (WriteCondition::Absent, None) => None,
                (WriteCondition::Absent, Some(_)) => {
                    Some(StoreError::PreconditionFailed("If-None-Match"))
                }
                (WriteCondition::EtagMatches(_), None) => {
                    Some(StoreError::NoSuchKey(w.key.clone()))
                }
                (WriteCondition::EtagMatches(list), Some(c)) => (!etag_in(list, &c.meta.etag))
                    .then_some(StoreError::PreconditionFailed("If-Match")),
            };
            if let Some(e) = refused {
                let _ = fs::remove_file(w.dir.join(&data_name));
                return Err(e);
            }
        }
        let old = current.map(|s| s.data);
        write_atomic(&w.dir, &meta_path, &sidecar)?;
        if let Some(old) = old.filter(|o| *o != data_name)
            && is_data_file_name(&old)
        {
            let _ = fs::remove_file(w.dir.join(old));
        }
        Ok(meta)
    }

    /// Stores an object from a byte slice; returns after the body and metadata are durable.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<ObjectMeta, StoreError> {
        let mut w = self.object_writer(bucket, key)?;
        w.write(body)?;
        self.commit_object(w, content_type, None)
    }

    /// Metadata and an open handle on the body of an object.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<(ObjectMeta, File), StoreError> {
        check_key_lookup(bucket, key)?;
        let dir = self.objects_dir(bucket)?;
        let meta_path = dir.join(format!("{}.meta", object_file_name(key)));
        // A concurrent overwrite may remove the body named by the sidecar we just read; retry.
        for _ in 0..8 {
            let sidecar = read_sidecar(&meta_path)?
                .filter(|s| s.meta.key == key)
                .ok_or_else(|| StoreError::NoSuchKey(key.to_string()))?;
            if !is_data_file_name(&sidecar.data) {
                return Err(io::Error::other("corrupt sidecar").into());
            }
            match File::open(dir.join(&sidecar.data)) {
                Ok(f) => return Ok((sidecar.meta, f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::NoSuchKey(key.to_string()))
    }

    /// Reads a whole object into memory.
    pub fn get_object_bytes(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectMeta, Vec<u8>), StoreError> {
        let (meta, mut f) = self.get_object(bucket, key)?;
        let mut buf = Vec::with_capacity(meta.size as usize);
        f.read_to_end(&mut buf)?;
        Ok((meta, buf))
    }

    /// Metadata of an object.
    pub fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StoreError> {
        check_key_lookup(bucket, key)?;
        let dir = self.objects_dir(bucket)?;
        let meta_path = dir.join(format!("{}.meta", object_file_name(key)));
        read_sidecar(&meta_path)?
            .filter(|s| s.meta.key == key)
            .map(|s| s.meta)
            .ok_or_else(|| StoreError::NoSuchKey(key.to_string()))
    }

    /// Replaces an object's tag set (PutObjectTagging; DeleteObjectTagging with none), durably:
    /// the sidecar is rewritten (fsync'd temp file, renamed) under the commit lock, so a
    /// concurrent write of the key either precedes it (and is retagged) or replaces it. The
    /// body, ETag and Last-Modified are unchanged.
    pub fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<ObjectMeta, StoreError> {
        check_key_lookup(bucket, key)?;
        let dir = self.objects_dir(bucket)?;
        let meta_path = dir.join(format!("{}.meta", object_file_name(key)));
        let _guard = lock(&self.commit);
        let mut sidecar = read_sidecar(&meta_path)?
            .filter(|s| s.meta.key == key)
            .ok_or_else(|| StoreError::NoSuchKey(key.to_string()))?;
        sidecar.meta.tags = tags;
        let raw = serde_json::to_vec(&sidecar).map_err(io::Error::other)?;
        write_atomic(&dir, &meta_path, &raw)?;
        Ok(sidecar.meta)
    }

    /// Deletes an object; deleting a missing key succeeds, as in S3.
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.delete_object_if(bucket, key, None)
    }

    /// Deletes an object if it has one of the ETags of `if_match` (a conditional delete's
    /// `If-Match`, `*` for any), decided under the commit lock against what the key holds then,
    /// as a conditional write is: `NoSuchKey` without an object, `PreconditionFailed` for
    /// another ETag. Without a condition, deleting a missing key succeeds, as in S3.
    pub fn delete_object_if(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<(), StoreError> {
        let dir = self.objects_dir(bucket)?;
        let missing = || match if_match {
            Some(_) => Err(StoreError::NoSuchKey(key.to_string())),
            None => Ok(()),
        };
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return missing();
        }
        let meta_path = dir.join(format!("{}.meta", object_file_name(key)));
        let _guard = lock(&self.commit);
        let Some(sidecar) = read_sidecar(&meta_path)? else {
            return missing();
        };
        if sidecar.meta.key != key {
            return missing();
        }
        if let Some(list) = if_match
            && !etag_in(list, &sidecar.meta.etag)
        {
            return Err(StoreError::PreconditionFailed("If-Match"));
        }
        // Metadata first: once it is gone the object is absent, whatever happens to the body.
        fs::remove_file(&meta_path)?;
        fsync_dir(&dir)?;
        if is_data_file_name(&sidecar.data) {
            let _ = fs::remove_file(dir.join(&sidecar.data));
        }
        Ok(())
    }

    /// Copies an object (server side) from `source`, as opened by [`Store::get_object`] (so the
    /// caller can check the version it copies first). `replace` gives new content type and
    /// metadata (`x-amz-metadata-directive: REPLACE`); otherwise the source's are kept, its
    /// storage class included (the S3 stub passes the class a copy gets in `replace`).
    pub fn copy_object(
        &self,
        (src_meta, mut src): (ObjectMeta, File),
        dst_bucket: &str,
        dst_key: &str,
        replace: Option<(Option<String>, Metadata)>,
        condition: Option<WriteCondition>,
        algorithm: Option<Algorithm>,
    ) -> Result<ObjectMeta, StoreError> {
        let mut w = self.object_writer(dst_bucket, dst_key)?;
        w.only_if(condition);
        // The algorithm asked for, else the source's, as a full-object checksum of the copy.
        if let Some(a) = algorithm.or(src_meta.checksum.as_ref().map(|c| c.algorithm)) {
            w.checksum_with(a);
        }
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n])?;
        }
        if w.size() != src_meta.size {
            return Err(io::Error::other("copy source changed size while copying").into());
        }
        let (content_type, metadata) =
            replace.unwrap_or_else(|| (Some(src_meta.content_type.clone()), src_meta.metadata()));
        self.commit_object_with(w, content_type.as_deref(), None, metadata, None)
    }

    /// Deletes an empty bucket (no objects, no multipart uploads in progress).
    pub fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        let _guard = lock(&self.commit);
        if self.bucket(name).is_none() {
            return Err(StoreError::NoSuchBucket(name.to_string()));
        }
        let dir = self.bucket_dir(name);
        for entry in fs::read_dir(dir.join("objects"))? {
            let n = entry?.file_name();
            let n = n.to_string_lossy();
            if !n.starts_with('.') && n.ends_with(".meta") {
                return Err(StoreError::BucketNotEmpty(name.to_string()));
            }
        }
        if !self.upload_ids(name)?.is_empty() {
            return Err(StoreError::BucketNotEmpty(name.to_string()));
        }
        // Metadata first: without bucket.json the directory is no bucket, whatever remains.
        fs::remove_file(dir.join("bucket.json"))?;
        fsync_dir(&dir)?;
        self.buckets.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        let _ = fs::remove_dir_all(&dir);
        fsync_dir(&self.root.join("buckets"))?;
        Ok(())
    }

    // --- Multipart uploads ------------------------------------------------------------------

    fn uploads_dir(&self, bucket: &str) -> PathBuf {
        self.bucket_dir(bucket).join("uploads")
    }

    /// Directory of an existing upload of an existing bucket.
    fn upload_dir(&self, bucket: &str, upload_id: &str) -> Result<PathBuf, StoreError> {
        if self.bucket(bucket).is_none() {
            return Err(StoreError::NoSuchBucket(bucket.to_string()));
        }
        let no = || StoreError::NoSuchUpload(upload_id.to_string());
        if !valid_upload_id(upload_id) {
            return Err(no());
        }
        let dir = self.uploads_dir(bucket).join(upload_id);
        if !dir.join("upload.json").is_file() {
            return Err(no());
        }
        Ok(dir)
    }

    /// Ids of the uploads in progress of a bucket (unsorted).
    fn upload_ids(&self, bucket: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.uploads_dir(bucket);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Ok(id) = entry.file_name().into_string() else { continue };
            if valid_upload_id(&id) && entry.path().join("upload.json").is_file() {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Starts a multipart upload; returns its metadata (with the new upload id).
    pub fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<&str>,
        metadata: Metadata,
    ) -> Result<UploadMeta, StoreError> {
        self.create_upload_with(bucket, key, content_type, metadata, None)
    }

    /// [`Store::create_upload`] with the checksum algorithm and type the object gets.
    pub fn create_upload_with(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<&str>,
        metadata: Metadata,
        checksum: Option<(Algorithm, Kind)>,
    ) -> Result<UploadMeta, StoreError> {
        check_key(key)?;
        if self.bucket(bucket).is_none() {
            return Err(StoreError::NoSuchBucket(bucket.to_string()));
        }
        let uploads = self.uploads_dir(bucket);
        fs::create_dir_all(&uploads)?;
        let id = unique_id();
        let dir = uploads.join(&id);
        fs::create_dir(&dir)?;
        let meta = UploadMeta {
            upload_id: id,
            key: key.to_string(),
            content_type: content_type.filter(|c| !c.is_empty()).map(str::to_string),
            user_meta: metadata.user,
            headers: metadata.headers,
            initiated: now_secs(),
            checksum,
            storage_class: metadata.storage_class,
            tags: metadata.tags,
        };
        let raw = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
        let result = write_atomic(&dir, &dir.join("upload.json"), &raw)
            .and_then(|()| Ok(fsync_dir(&uploads)?));
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(meta)
    }

    /// Metadata of an upload in progress.
    pub fn upload(&self, bucket: &str, upload_id: &str) -> Result<UploadMeta, StoreError> {
        let dir = self.upload_dir(bucket, upload_id)?;
        let raw = match fs::read(dir.join("upload.json")) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchUpload(upload_id.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(serde_json::from_slice(&raw).map_err(io::Error::other)?)
    }

    /// All uploads in progress of a bucket whose key starts with `prefix`, by key then initiation.
    pub fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<UploadMeta>, StoreError> {
        if self.bucket(bucket).is_none() {
            return Err(StoreError::NoSuchBucket(bucket.to_string()));
        }
        let mut out = Vec::new();
        for id in self.upload_ids(bucket)? {
            match self.upload(bucket, &id) {
                Ok(m) if m.key.starts_with(prefix) => out.push(m),
                Ok(_) | Err(StoreError::NoSuchUpload(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| {
            (&a.key, a.initiated, &a.upload_id).cmp(&(&b.key, b.initiated, &b.upload_id))
        });
        Ok(out)
    }

    /// Starts writing part `number` of an upload.
    pub fn part_writer(
        &self,
        bucket: &str,
        upload_id: &str,
        number: u32,
    ) -> Result<ObjectWriter, StoreError> {
        let meta = self.upload(bucket, upload_id)?;
        let dir = self.upload_dir(bucket, upload_id)?;
        let tmp = dir.join(format!("{TMP_PREFIX}{}", unique_id()));
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok(ObjectWriter {
            bucket: bucket.to_string(),
            key: meta.key,
            dir,
            tmp,
            file: Some(file),
            md5: Md5::new(),
            size: 0,
            part: Some((upload_id.to_string(), number)),
            condition: None,
            checksum: Hasher::default(),
            expected_checksum: None,
            final_checksum: None,
            part_sizes: Vec::new(),
            part_checksums: Vec::new(),
        })
    }

    /// Makes a part durable (body fsynced, renamed, directory fsynced) before returning it.
    pub fn commit_part(
        &self,
        mut w: ObjectWriter,
        expected_md5: Option<[u8; 16]>,
    ) -> Result<PartInfo, StoreError> {
        let (upload_id, number) =
            w.part.clone().ok_or_else(|| io::Error::other("object writer committed as a part"))?;
        let file =
            w.file.take().ok_or_else(|| io::Error::other("object writer already finished"))?;
        let tmp = w.tmp.clone();
        let result = (|| {
            let digest = std::mem::replace(&mut w.md5, Md5::new()).finalize();
            if let Some(expected) = expected_md5
                && expected[..] != digest[..]
            {
                return Err(StoreError::BadDigest);
            }
            w.checked_checksum()?;
            file.sync_all()?;
            drop(file);
            let md5 = hex::encode(digest);
            let name = format!("p{number:05}.{md5}.{}.part", unique_id());
            let _guard = lock(&self.commit);
            // Aborted (or completed) meanwhile: the directory is gone or going.
            if !w.dir.join("upload.json").is_file() {
                return Err(StoreError::NoSuchUpload(upload_id.clone()));
            }
            fs::rename(&tmp, w.dir.join(&name))?;
            fsync_dir(&w.dir)?;
            // Older uploads of the same part number are superseded.
            for p in read_parts(&w.dir)?.into_iter().filter(|p| p.0 == number) {
                if p.3 != name {
                    let _ = fs::remove_file(w.dir.join(&p.3));
                }
            }
            Ok(PartInfo {
                number,
                etag: format!("\"{md5}\""),
                size: w.size,
                last_modified: now_secs(),
                // UploadPart answers the checksum it checked itself.
                checksum: None,
                file: w.dir.join(&name),
            })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// The upload and its acknowledged parts, by part number.
    pub fn list_parts(
        &self,
        bucket: &str,
        upload_id: &str,
    ) -> Result<(UploadMeta, Vec<PartInfo>), StoreError> {
        let meta = self.upload(bucket, upload_id)?;
        let dir = self.upload_dir(bucket, upload_id)?;
        let mut by_number: BTreeMap<u32, (String, String)> = BTreeMap::new();
        for (n, _md5, ver, name) in read_parts(&dir)? {
            match by_number.get(&n) {
                Some((v, _)) if *v >= ver => {}
                _ => {
                    by_number.insert(n, (ver, name));
                }
            }
        }
        let mut parts = Vec::new();
        for (n, (_, name)) in by_number {
            let path = dir.join(&name);
            let Ok(m) = fs::metadata(&path) else { continue };
            let md5 = name.split('.').nth(1).unwrap_or_default();
            let last_modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            // Hashed from the part as stored: its upload was checked against any value the
            // client sent, so this is the value S3 lists.
            let checksum = match meta.checksum {
                Some((algorithm, _)) => Some(hash_file(&path, algorithm)?),
                None => None,
            };
            parts.push(PartInfo {
                number: n,
                etag: format!("\"{md5}\""),
                size: m.len(),
                last_modified,
                checksum,
                file: path,
            });
        }
        Ok((meta, parts))
    }

    /// Abandons an upload and its parts.
    pub fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), StoreError> {
        let dir = self.upload_dir(bucket, upload_id)?;
        let _guard = lock(&self.commit);
        remove_upload_dir(&dir)?;
        fsync_dir(&self.uploads_dir(bucket))?;
        Ok(())
    }

    /// Assembles an upload from the listed (part number, ETag) pairs into its object, durably,
    /// then removes the upload. The ETag is `"<md5 of the part MD5s>-<count>"`.
    pub fn complete_upload(
        &self,
        bucket: &str,
        upload_id: &str,
        wanted: &[(u32, String)],
        condition: Option<WriteCondition>,
    ) -> Result<ObjectMeta, StoreError> {
        self.complete_upload_checked(bucket, upload_id, wanted, condition, &Default::default())
    }

    /// [`Store::complete_upload`], checking the checksums the request names: each part's (with
    /// the upload's algorithm) and the whole object's, against the parts as stored
    /// ([`StoreError::BadChecksum`] on a difference, nothing written). The object gets the
    /// upload's checksum: composite (the checksum of the parts' digests, `<base64>-<parts>`) or
    /// full object; a full-object CRC64NVME for an upload created without an algorithm.
    pub fn complete_upload_checked(
        &self,
        bucket: &str,
        upload_id: &str,
        wanted: &[(u32, String)],
        condition: Option<WriteCondition>,
        checks: &CompleteChecks,
    ) -> Result<ObjectMeta, StoreError> {
        let (meta, parts) = self.list_parts(bucket, upload_id)?;
        if wanted.is_empty() {
            return Err(StoreError::InvalidPart(0));
        }
        if wanted.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(StoreError::InvalidPartOrder);
        }
        let mut chosen = Vec::with_capacity(wanted.len());
        for (n, etag) in wanted {
            let p = parts
                .iter()
                .find(|p| p.number == *n)
                .filter(|p| p.etag.trim_matches('"') == etag.trim().trim_matches('"'))
                .ok_or(StoreError::InvalidPart(*n))?;
            chosen.push(p);
        }
        if let Some(p) = chosen[..chosen.len() - 1].iter().find(|p| p.size < MIN_PART_SIZE) {
            return Err(StoreError::EntityTooSmall {
                part: p.number,
                size: p.size,
                etag: p.etag.clone(),
            });
        }
        let mut w = self.object_writer(bucket, &meta.key)?;
        w.only_if(condition);
        // The body is hashed whole unless the checksum is composite, and part by part whenever
        // the upload has an algorithm: a composite checksum is made of the parts' digests, the
        // request may name part checksums, and the object keeps each part's for a `partNumber`
        // read.
        let composite = matches!(meta.checksum, Some((_, Kind::Composite)));
        let mut part_sums = None;
        if let Some((algorithm, _)) = meta.checksum {
            w.checksum_with(algorithm);
            part_sums = Some((Hasher::new(algorithm), Hasher::new(algorithm)));
        }
        if let Some(v) = &checks.whole {
            w.expect_checksum(v);
        }
        let mut md5s = Md5::new();
        let mut buf = vec![0u8; 1024 * 1024];
        for (i, p) in chosen.iter().enumerate() {
            let mut f = File::open(&p.file).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => StoreError::InvalidPart(p.number),
                _ => e.into(),
            })?;
            // Through the writer's checksum (a full-object one); its MD5 is not used for an
            // assembled object (its ETag is the parts').
            let file = w.file.as_mut().ok_or_else(|| io::Error::other("writer finished"))?;
            let mut n = 0u64;
            loop {
                let k = f.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                file.write_all(&buf[..k])?;
                if !composite {
                    w.checksum.update(&buf[..k]);
                }
                if let Some((part, _)) = part_sums.as_mut() {
                    part.update(&buf[..k]);
                }
                n += k as u64;
            }
            if n != p.size {
                return Err(StoreError::InvalidPart(p.number));
            }
            if let Some((part, composite)) = part_sums.as_mut() {
                let raw = part.finish_raw();
                let value = super::s3::base64_encode(&raw);
                if let Some(Some(named)) = checks.parts.get(i)
                    && named.trim() != value
                {
                    return Err(StoreError::BadChecksum(part.algorithm()));
                }
                composite.update(&raw);
                w.part_checksums.push(value);
            }
            w.size += n;
            md5s.update(hex::decode(p.etag.trim_matches('"')).map_err(io::Error::other)?);
        }
        let etag = format!("\"{}-{}\"", hex::encode(md5s.finalize()), chosen.len());
        w.part_sizes = chosen.iter().map(|p| p.size).collect();
        if let (Some((algorithm, Kind::Composite)), Some((_, mut composite))) =
            (meta.checksum, part_sums)
        {
            let value =
                format!("{}-{}", super::s3::base64_encode(&composite.finish_raw()), chosen.len());
            w.final_checksum = Some(Checksum { algorithm, value, kind: Kind::Composite });
        }
        let obj = self.commit_object_with(
            w,
            meta.content_type.as_deref(),
            None,
            meta.metadata(),
            Some(etag),
        )?;
        let _guard = lock(&self.commit);
        if let Ok(dir) = self.upload_dir(bucket, upload_id) {
            remove_upload_dir(&dir)?;
            fsync_dir(&self.uploads_dir(bucket))?;
        }
        Ok(obj)
    }

    /// Lists objects in UTF-8 byte order of keys.
    ///
    /// Keys (and common prefixes) `<= start_after` are skipped; with a non-empty `delimiter`,
    /// keys whose rest after `prefix` contains it are rolled up into common prefixes. Contents
    /// and common prefixes together count against `max_keys`.
    pub fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<ListResult, StoreError> {
        let dir = self.objects_dir(bucket)?;
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let start_after = start_after.unwrap_or("");
        let mut all: Vec<ObjectMeta> = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if file_name.starts_with('.') || !file_name.ends_with(".meta") {
                continue;
            }
            match read_sidecar(&entry.path()) {
                Ok(Some(s))
                    if s.meta.key.starts_with(prefix) && s.meta.key.as_str() > start_after =>
                {
                    all.push(s.meta)
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(file = %file_name, error = %e, "skipping unreadable sidecar")
                }
            }
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));

        let mut out = ListResult::default();
        let mut count = 0usize;
        let mut last: Option<String> = None;
        for meta in all {
            let group = delimiter.and_then(|d| {
                meta.key[prefix.len()..]
                    .find(d)
                    .map(|i| meta.key[..prefix.len() + i + d.len()].to_string())
            });
            if let Some(cp) = &group
                && (cp.as_str() <= start_after || out.common_prefixes.last() == Some(cp))
            {
                continue;
            }
            if count == max_keys {
                out.is_truncated = max_keys > 0;
                out.next_token = if max_keys > 0 { last } else { None };
                return Ok(out);
            }
            count += 1;
            match group {
                Some(cp) => {
                    last = Some(cp.clone());
                    out.common_prefixes.push(cp);
                }
                None => {
                    last = Some(meta.key.clone());
                    out.contents.push(meta);
                }
            }
        }
        Ok(out)
    }
}

/// Upload ids are generated by [`unique_id`]: lowercase hex only, so they never name a path.
/// Whether `etag` is among a comma-separated list of ETags (quoted or not; `*` matches any).
pub fn etag_in(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == etag.trim_matches('"'))
}

fn valid_upload_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Part files of an upload directory: (number, md5 hex, version, file name).
/// The checksum of a stored file, read in 1 MiB blocks.
fn hash_file(path: &Path, algorithm: Algorithm) -> io::Result<crate::services::checksum::Checksum> {
    let mut h = Hasher::new(algorithm);
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

fn read_parts(dir: &Path) -> io::Result<Vec<(u32, String, String, String)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let f: Vec<&str> = name.split('.').collect();
        if let [p, md5, ver, "part"] = f[..]
            && let Some(Ok(n)) = p.strip_prefix('p').map(str::parse::<u32>)
            && md5.len() == 32
            && md5.bytes().all(|c| c.is_ascii_hexdigit())
        {
            out.push((n, md5.to_string(), ver.to_string(), name.to_string()));
        }
    }
    Ok(out)
}

/// Removes an upload: its metadata first (then it no longer exists), then the parts.
fn remove_upload_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join("upload.json")) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::remove_dir_all(dir)
}

/// Removes temp files of interrupted part writes and uploads whose creation never finished.
fn cleanup_uploads_dir(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if !entry.file_type()?.is_dir() {
            let _ = fs::remove_file(&path);
            continue;
        }
        if !path.join("upload.json").is_file() {
            let _ = fs::remove_dir_all(&path);
            continue;
        }
        for e in fs::read_dir(&path)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

pub use crate::model::valid_bucket_name;

/// File name stem of an object: never contains '/', '.', or anything but `[0-9a-f]` after the tag.
fn object_file_name(key: &str) -> String {
    if key.len() <= MAX_DIRECT_KEY_LEN {
        format!("k{}", hex::encode(key.as_bytes()))
    } else {
        format!("h{}", hex::encode(Md5::digest(key.as_bytes())))
    }
}

fn is_data_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.ends_with(".data")
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.')
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::KeyTooLong(key.len()));
    }
    Ok(())
}

/// For reads, an impossible key simply does not exist (after checking the bucket).
fn check_key_lookup(_bucket: &str, key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StoreError::NoSuchKey(key.to_string()));
    }
    Ok(())
}

fn read_sidecar(path: &Path) -> Result<Option<Sidecar>, StoreError> {
    match fs::read(path) {
        Ok(raw) => Ok(Some(serde_json::from_slice(&raw).map_err(io::Error::other)?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn write_bucket_meta(dir: &Path, meta: &BucketMeta) -> Result<(), StoreError> {
    let raw = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    write_atomic(dir, &dir.join("bucket.json"), &raw)
}

/// Writes `data` to a temp file in `dir`, fsyncs it, renames it to `path`, fsyncs `dir`.
fn write_atomic(dir: &Path, path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{TMP_PREFIX}{}", unique_id()));
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    Ok(result?)
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes temp files and body files no sidecar refers to. A sidecar that cannot be read
/// (damaged) says nothing about which body is its object's: every body of that object's name
/// (`<name>.*.data`) is kept, and a warning names the sidecar. Such an object is not served
/// (its metadata is unknown) until the sidecar is repaired or the key is written anew.
fn cleanup_objects_dir(dir: &Path) -> io::Result<()> {
    let mut referenced = HashSet::new();
    let mut damaged = Vec::new();
    let mut data_files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(TMP_PREFIX) {
            let _ = fs::remove_file(entry.path());
        } else if let Some(stem) = name.strip_suffix(".meta") {
            match read_sidecar(&entry.path()) {
                Ok(Some(s)) => {
                    referenced.insert(s.data);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(
                        file = %entry.path().display(),
                        error = %e,
                        "damaged object metadata: the object is not served; its body is kept"
                    );
                    damaged.push(format!("{stem}."));
                }
            }
        } else if name.ends_with(".data") {
            data_files.push(name.to_string());
        }
    }
    for name in data_files {
        if !referenced.contains(&name) && !damaged.iter().any(|d| name.starts_with(d.as_str())) {
            let _ = fs::remove_file(dir.join(name));
        }
    }
    Ok(())
}

fn lock(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// 28 hex chars, unique within the process and (practically) across restarts.
fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    format!("{:016x}{:04x}{:08x}", nanos, std::process::id() as u16, n as u32)
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A temp directory removed on drop.
    pub(crate) struct TempDir(pub PathBuf);
    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "vpcsim-{tag}-{}-{}-{}",
                std::process::id(),
                now_secs(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::TempDir;
    use super::*;

    fn store(tag: &str) -> (TempDir, Store) {
        let d = TempDir::new(tag);
        let s = Store::open(&d.0).expect("open");
        s.create_bucket("bkt", "us-east-1", None).expect("create");
        (d, s)
    }

    fn objects_dir(d: &TempDir) -> PathBuf {
        d.0.join("buckets/bkt/objects")
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.1", "a.b-c", "123"] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            "Abc",
            "-abc",
            "abc-",
            "a..b",
            "a_b",
            "192.168.1.1",
            &"a".repeat(64),
            "a.-b",
            "ab/c",
        ] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }

    #[test]
    fn bucket_lifecycle_persists() {
        let d = TempDir::new("bkts");
        {
            let s = Store::open(&d.0).unwrap();
            assert!(matches!(
                s.create_bucket("Bad", "us-east-1", None),
                Err(StoreError::InvalidBucketName(_))
            ));
            s.create_bucket("one", "us-east-1", None).unwrap();
            s.create_bucket("two", "eu-west-1", Some("{}".into())).unwrap();
            assert!(matches!(
                s.create_bucket("one", "us-east-1", None),
                Err(StoreError::BucketAlreadyOwnedByYou(_))
            ));
            // The lab's one account owns every bucket of its store: in another region too, the
            // bucket is the caller's own (S3 answers 409 BucketAlreadyOwnedByYou across regions).
            assert!(matches!(
                s.create_bucket("one", "eu-west-1", None),
                Err(StoreError::BucketAlreadyOwnedByYou(_))
            ));
            s.set_bucket_policy("one", Some("{\"Version\":\"2012-10-17\"}".into())).unwrap();
            assert!(matches!(s.set_bucket_policy("nope", None), Err(StoreError::NoSuchBucket(_))));
        }
        // Interrupted creation: directory without bucket.json is not a bucket.
        fs::create_dir_all(d.0.join("buckets/half/objects")).unwrap();
        let s = Store::open(&d.0).unwrap();
        let names: Vec<_> = s.buckets().into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["one", "two"]);
        assert_eq!(s.bucket("two").unwrap().region, "eu-west-1");
        assert_eq!(
            s.bucket("one").unwrap().policy.as_deref(),
            Some("{\"Version\":\"2012-10-17\"}")
        );
        s.create_bucket("half", "us-east-1", None).unwrap();
        assert!(s.bucket("half").is_some());
    }

    #[test]
    fn a_bucket_has_an_owner_kept_across_restarts() {
        let aws = crate::model::AWS_ACCOUNT_ID;
        let d = TempDir::new("owners");
        {
            let s = Store::open(&d.0).unwrap();
            s.create_bucket("mine", "us-east-1", None).unwrap();
            s.create_bucket_owned("theirs", "us-east-1", None, aws).unwrap();
            s.create_bucket("handed", "us-east-1", None).unwrap();
            s.set_bucket_owner("handed", aws).unwrap();
            // S3's CreateBucket: another account's bucket is "not available" (BucketAlreadyExists),
            // whatever the region; one's own is BucketAlreadyOwnedByYou.
            for name in ["theirs", "handed"] {
                assert!(matches!(
                    s.create_bucket(name, "us-east-1", None),
                    Err(StoreError::BucketAlreadyExists(_))
                ));
            }
            assert!(matches!(
                s.create_bucket_owned("mine", "us-east-1", None, aws),
                Err(StoreError::BucketAlreadyExists(_))
            ));
        }
        // A bucket.json of an older vpcsim has no owner: the lab's. The lab's own buckets keep
        // that format.
        fs::write(
            d.0.join("buckets/mine/bucket.json"),
            r#"{"name":"mine","region":"us-east-1","policy":null,"created":1}"#,
        )
        .unwrap();
        let s = Store::open(&d.0).unwrap();
        let owner = |n: &str| s.bucket(n).unwrap().owner;
        assert_eq!([owner("mine"), owner("theirs"), owner("handed")], [ACCOUNT_ID, aws, aws]);
        s.set_bucket_policy("mine", None).unwrap();
        let raw = fs::read_to_string(d.0.join("buckets/mine/bucket.json")).unwrap();
        assert!(!raw.contains("owner"), "{raw}");
        let raw = fs::read_to_string(d.0.join("buckets/theirs/bucket.json")).unwrap();
        assert!(raw.contains(aws), "{raw}");
    }

    #[test]
    fn put_get_head_delete() {
        let (_d, s) = store("crud");
        let m = s.put_object("bkt", "a/b.txt", b"hello", Some("text/plain")).unwrap();
        assert_eq!(m.etag, "\"5d41402abc4b2a76b9719d911017c592\"");
        assert_eq!(m.size, 5);
        let (g, body) = s.get_object_bytes("bkt", "a/b.txt").unwrap();
        assert_eq!(g, m);
        assert_eq!(body, b"hello");
        assert_eq!(s.head_object("bkt", "a/b.txt").unwrap().content_type, "text/plain");
        let m2 = s.put_object("bkt", "a/b.txt", b"", None).unwrap();
        assert_eq!(m2.etag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
        assert_eq!(m2.content_type, DEFAULT_CONTENT_TYPE);
        assert_eq!(s.get_object_bytes("bkt", "a/b.txt").unwrap().1, b"");
        s.delete_object("bkt", "a/b.txt").unwrap();
        s.delete_object("bkt", "a/b.txt").unwrap();
        assert!(matches!(s.get_object("bkt", "a/b.txt"), Err(StoreError::NoSuchKey(_))));
        assert!(matches!(s.head_object("nope", "x"), Err(StoreError::NoSuchBucket(_))));
        assert!(matches!(s.put_object("nope", "x", b"", None), Err(StoreError::NoSuchBucket(_))));
        assert!(matches!(s.put_object("bkt", "", b"", None), Err(StoreError::InvalidKey)));
        assert!(matches!(
            s.put_object("bkt", &"x".repeat(1025), b"", None),
            Err(StoreError::KeyTooLong(_))
        ));
        // Only metadata-less debris is left: nothing.
        assert_eq!(fs::read_dir(objects_dir(&_d)).unwrap().count(), 0);
    }

    #[test]
    fn overwrite_leaves_one_body() {
        let (d, s) = store("ow");
        for i in 0..5 {
            s.put_object("bkt", "k", format!("v{i}").as_bytes(), None).unwrap();
        }
        assert_eq!(s.get_object_bytes("bkt", "k").unwrap().1, b"v4");
        let names: Vec<String> = fs::read_dir(objects_dir(&d))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn weird_keys_stay_inside() {
        let (d, s) = store("keys");
        let keys = [
            "../../escape",
            "/abs/path",
            "with space",
            "ünïcødé/ключ/键",
            "a/../../b",
            ".",
            "..",
            "x\0y",
            &"long/".repeat(100),
            &"z".repeat(1024),
        ];
        for (i, k) in keys.iter().enumerate() {
            s.put_object("bkt", k, format!("{i}").as_bytes(), None).unwrap();
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(s.get_object_bytes("bkt", k).unwrap().1, format!("{i}").as_bytes(), "{k:?}");
        }
        // Every file is a direct child of the objects dir; nothing appeared elsewhere.
        for e in fs::read_dir(objects_dir(&d)).unwrap() {
            let e = e.unwrap();
            assert!(e.file_type().unwrap().is_file());
            let n = e.file_name().into_string().unwrap();
            assert!(n.len() < 255 && !n.contains('/') && !n.starts_with('.'), "{n}");
        }
        let top: Vec<_> = fs::read_dir(&d.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(top, ["buckets"]);
        let l = s.list_objects("bkt", "", None, None, 1000).unwrap();
        let mut sorted: Vec<&str> = keys.to_vec();
        sorted.sort();
        assert_eq!(l.contents.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(), sorted);
    }

    #[test]
    fn list_order_and_delimiter() {
        let (_d, s) = store("list");
        for k in ["b", "a/1", "a/2", "a/b/c", "c/x", "ä", "Z", "a-", "c/y"] {
            s.put_object("bkt", k, b"x", None).unwrap();
        }
        let all = s.list_objects("bkt", "", None, None, 1000).unwrap();
        let keys: Vec<_> = all.contents.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["Z", "a-", "a/1", "a/2", "a/b/c", "b", "c/x", "c/y", "ä"]);
        assert!(!all.is_truncated);

        let l = s.list_objects("bkt", "", Some("/"), None, 1000).unwrap();
        assert_eq!(
            l.contents.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
            ["Z", "a-", "b", "ä"]
        );
        assert_eq!(l.common_prefixes, ["a/", "c/"]);

        let l = s.list_objects("bkt", "a/", Some("/"), None, 1000).unwrap();
        assert_eq!(l.contents.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(), ["a/1", "a/2"]);
        assert_eq!(l.common_prefixes, ["a/b/"]);

        // Pagination with delimiter: common prefixes count and are never repeated.
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let l = s.list_objects("bkt", "", Some("/"), token.as_deref(), 2).unwrap();
            assert!(l.contents.len() + l.common_prefixes.len() <= 2);
            seen.extend(l.contents.iter().map(|m| m.key.clone()));
            seen.extend(l.common_prefixes.iter().cloned());
            if !l.is_truncated {
                break;
            }
            token = l.next_token;
        }
        seen.sort();
        assert_eq!(seen, ["Z", "a-", "a/", "b", "c/", "ä"]);

        let l = s.list_objects("bkt", "", None, Some("a/2"), 2).unwrap();
        assert_eq!(l.contents.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(), ["a/b/c", "b"]);
        assert!(l.is_truncated);
        assert_eq!(l.next_token.as_deref(), Some("b"));
        let l = s.list_objects("bkt", "", None, None, 0).unwrap();
        assert!(l.contents.is_empty() && !l.is_truncated);
    }

    /// A damaged sidecar (truncated) does not cost the object its body at the next open: the
    /// body stays on disk, the object is not served, other objects are cleaned as before. A
    /// damaged bucket.json stops the open with its path.
    #[test]
    fn damaged_metadata_keeps_the_body_and_names_the_file() {
        let d = TempDir::new("damaged");
        {
            let s = Store::open(&d.0).unwrap();
            s.create_bucket("bkt", "us-east-1", None).unwrap();
            s.put_object("bkt", "precious", b"the only copy", None).unwrap();
            s.put_object("bkt", "other", b"fine", None).unwrap();
        }
        let dir = objects_dir(&d);
        let name = object_file_name("precious");
        let meta = dir.join(format!("{name}.meta"));
        let raw = fs::read(&meta).unwrap();
        fs::write(&meta, &raw[..raw.len() / 2]).unwrap();
        let orphan = object_file_name("orphan");
        fs::write(dir.join(format!("{orphan}.0000000000000002.data")), b"orphan").unwrap();
        let s = Store::open(&d.0).unwrap();
        let bodies: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(&name) && n.ends_with(".data"))
            .collect();
        assert_eq!(bodies.len(), 1, "the body is kept");
        assert_eq!(fs::read(dir.join(&bodies[0])).unwrap(), b"the only copy");
        assert!(!dir.join(format!("{orphan}.0000000000000002.data")).exists());
        assert!(s.get_object("bkt", "precious").is_err());
        assert_eq!(s.get_object_bytes("bkt", "other").unwrap().1, b"fine");
        drop(s);
        let bucket_json = d.0.join("buckets/bkt/bucket.json");
        fs::write(&bucket_json, b"{\"name\": \"bk").unwrap();
        let e = format!("{:#}", Store::open(&d.0).err().expect("a damaged bucket.json"));
        assert!(e.contains(&bucket_json.display().to_string()), "{e}");
    }

    #[test]
    fn crash_debris_is_ignored_and_cleaned() {
        let d = TempDir::new("crash");
        {
            let s = Store::open(&d.0).unwrap();
            s.create_bucket("bkt", "us-east-1", None).unwrap();
            s.put_object("bkt", "kept", b"old", None).unwrap();
        }
        let dir = objects_dir(&d);
        let name = object_file_name("kept");
        // Crash after the body of an overwrite was renamed, before its sidecar: new body unreferenced.
        fs::write(dir.join(format!("{name}.ffffffffffffffff.data")), b"new-but-unacknowledged")
            .unwrap();
        // Crash mid-write: a partial temp file.
        fs::write(dir.join(".tmp-0000000000000001"), b"partial").unwrap();
        // Crash after a body of a brand-new key was renamed, before its sidecar.
        let orphan = object_file_name("orphan");
        fs::write(dir.join(format!("{orphan}.0000000000000002.data")), b"orphan").unwrap();
        {
            // Even without cleanup, debris is invisible.
            let s = Store {
                root: d.0.clone(),
                buckets: RwLock::new(BTreeMap::new()),
                commit: Mutex::new(()),
            };
            s.buckets.write().unwrap().insert(
                "bkt".into(),
                BucketMeta {
                    name: "bkt".into(),
                    region: "us-east-1".into(),
                    policy: None,
                    created: 0,
                    location_constraint: None,
                    owner: ACCOUNT_ID.into(),
                },
            );
            assert_eq!(s.get_object_bytes("bkt", "kept").unwrap().1, b"old");
            assert!(matches!(s.get_object("bkt", "orphan"), Err(StoreError::NoSuchKey(_))));
            let l = s.list_objects("bkt", "", None, None, 1000).unwrap();
            assert_eq!(l.contents.len(), 1);
        }
        let s = Store::open(&d.0).unwrap();
        assert_eq!(s.get_object_bytes("bkt", "kept").unwrap().1, b"old");
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|n| n.starts_with(&name)));
    }

    #[test]
    fn durability_order_body_before_metadata() {
        // The sidecar must name a body file that already exists with full content when it appears.
        let (d, s) = store("order");
        let s = std::sync::Arc::new(s);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dir = objects_dir(&d);
        let name = object_file_name("k");
        let watcher = {
            let stop = stop.clone();
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut checks = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Some(sc)) = read_sidecar(&dir.join(format!("{name}.meta"))) {
                        // The body may be replaced right after we read the sidecar; only a
                        // present file is checked, and it must be complete.
                        if let Ok(b) = fs::read(dir.join(&sc.data)) {
                            assert_eq!(b.len() as u64, sc.meta.size);
                            assert_eq!(
                                format!("\"{}\"", hex::encode(Md5::digest(&b))),
                                sc.meta.etag
                            );
                            checks += 1;
                        }
                    }
                }
                checks
            })
        };
        for i in 0..50 {
            let body = vec![i as u8; 10_000 + i * 1000];
            s.put_object("bkt", "k", &body, None).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(watcher.join().unwrap() > 0);
        let mut w = s.object_writer("bkt", "k2").unwrap();
        w.write(b"abc").unwrap();
        // Nothing visible before commit.
        assert!(matches!(s.head_object("bkt", "k2"), Err(StoreError::NoSuchKey(_))));
        assert!(matches!(s.commit_object(w, None, Some([0; 16])), Err(StoreError::BadDigest)));
        assert!(matches!(s.head_object("bkt", "k2"), Err(StoreError::NoSuchKey(_))));
        let mut w = s.object_writer("bkt", "k2").unwrap();
        w.write(b"abc").unwrap();
        let md5: [u8; 16] = Md5::digest(b"abc").into();
        s.commit_object(w, None, Some(md5)).unwrap();
        // A dropped writer leaves no temp file.
        let w = s.object_writer("bkt", "k3").unwrap();
        drop(w);
        assert!(
            fs::read_dir(&dir).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .starts_with('.'))
        );
    }

    #[test]
    fn multipart_parts_survive_restart() {
        let d = TempDir::new("mpu");
        let (id, e1, e2) = {
            let s = Store::open(&d.0).unwrap();
            s.create_bucket("bkt", "us-east-1", None).unwrap();
            let up = s.create_upload("bkt", "../k", Some("text/x"), Metadata::default()).unwrap();
            let mut w = s.part_writer("bkt", &up.upload_id, 1).unwrap();
            w.write(&vec![7u8; MIN_PART_SIZE as usize]).unwrap();
            let p1 = s.commit_part(w, None).unwrap();
            let mut w = s.part_writer("bkt", &up.upload_id, 2).unwrap();
            w.write(b"tail").unwrap();
            let p2 = s.commit_part(w, None).unwrap();
            // An unacknowledged part write in progress when the process dies.
            let mut w = s.part_writer("bkt", &up.upload_id, 3).unwrap();
            w.write(b"partial").unwrap();
            std::mem::forget(w);
            (up.upload_id, p1.etag, p2.etag)
        };
        // An upload whose creation never finished (no upload.json).
        fs::create_dir_all(d.0.join("buckets/bkt/uploads/00ff")).unwrap();
        let s = Store::open(&d.0).unwrap();
        assert!(!d.0.join("buckets/bkt/uploads/00ff").exists());
        let (meta, parts) = s.list_parts("bkt", &id).unwrap();
        assert_eq!(meta.key, "../k");
        assert_eq!(
            parts.iter().map(|p| (p.number, p.size)).collect::<Vec<_>>(),
            [(1, MIN_PART_SIZE), (2, 4)]
        );
        let updir = d.0.join("buckets/bkt/uploads").join(&id);
        assert!(
            fs::read_dir(&updir).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
        );
        assert_eq!(s.list_uploads("bkt", "").unwrap().len(), 1);
        assert!(matches!(s.delete_bucket("bkt"), Err(StoreError::BucketNotEmpty(_))));
        let m = s.complete_upload("bkt", &id, &[(1, e1), (2, e2)], None).unwrap();
        assert!(m.etag.ends_with("-2\""), "{}", m.etag);
        assert_eq!(m.content_type, "text/x");
        let (_, body) = s.get_object_bytes("bkt", "../k").unwrap();
        assert_eq!(body.len() as u64, MIN_PART_SIZE + 4);
        assert!(body.ends_with(b"tail"));
        assert!(!updir.exists());
        assert!(matches!(s.list_parts("bkt", &id), Err(StoreError::NoSuchUpload(_))));
        for bad in ["", "..", "../x", "ABC", "x/y"] {
            assert!(
                matches!(s.part_writer("bkt", bad, 1), Err(StoreError::NoSuchUpload(_))),
                "{bad}"
            );
        }
        // Nothing outside the bucket directory.
        let top: Vec<_> = fs::read_dir(&d.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(top, ["buckets"]);
        s.delete_object("bkt", "../k").unwrap();
        s.delete_bucket("bkt").unwrap();
        assert!(s.bucket("bkt").is_none());
        assert!(Store::open(&d.0).unwrap().bucket("bkt").is_none());
    }

    /// Standard headers and the storage class survive a restart with the object and its
    /// uploads; a sidecar or an upload.json written before they were kept (no `headers`, no
    /// `storage_class`) loads with none, as STANDARD.
    #[test]
    fn object_headers_persist_and_old_metadata_loads() {
        let d = TempDir::new("hdrs");
        let md = Metadata {
            headers: BTreeMap::from([("cache-control".into(), "no-cache".into())]),
            user: BTreeMap::from([("owner".into(), "alice".into())]),
            storage_class: StorageClass::GlacierIr,
            tags: BTreeMap::from([("team".into(), "blue".into())]),
        };
        let id = {
            let s = Store::open(&d.0).unwrap();
            s.create_bucket("bkt", "us-east-1", None).unwrap();
            let mut w = s.object_writer("bkt", "k").unwrap();
            w.write(b"x").unwrap();
            s.commit_object_with(w, None, None, md.clone(), None).unwrap();
            s.create_upload("bkt", "up", None, md.clone()).unwrap().upload_id
        };
        let s = Store::open(&d.0).unwrap();
        assert_eq!(s.head_object("bkt", "k").unwrap().metadata(), md);
        assert_eq!(s.upload("bkt", &id).unwrap().metadata(), md);
        // Written by an older vpcsim: no "headers".
        let name = object_file_name("old");
        fs::write(objects_dir(&d).join(format!("{name}.1.data")), b"old").unwrap();
        let sidecar = format!(
            r#"{{"key":"old","etag":"\"149603e6c03516362a8da23f624db945\"","size":3,"content_type":"text/plain","last_modified":1700000000,"user_meta":{{"a":"b"}},"data":"{name}.1.data"}}"#
        );
        fs::write(objects_dir(&d).join(format!("{name}.meta")), sidecar).unwrap();
        let (m, body) = s.get_object_bytes("bkt", "old").unwrap();
        assert_eq!((body.as_slice(), m.headers.len(), m.user_meta.len()), (&b"old"[..], 0, 1));
        // Nor a storage class: STANDARD (and a STANDARD object's sidecar names none).
        assert_eq!(m.storage_class, StorageClass::Standard);
        // Nor tags, nor part checksums: none.
        assert!(m.tags.is_empty() && m.part_checksums.is_empty());
        let raw =
            fs::read_to_string(objects_dir(&d).join(format!("{}.meta", object_file_name("k"))))
                .unwrap();
        assert!(raw.contains(r#""storage_class":"GLACIER_IR""#), "{raw}");
        let up = d.0.join("buckets/bkt/uploads").join(&id).join("upload.json");
        let raw = format!(
            r#"{{"upload_id":"{id}","key":"up","content_type":null,"user_meta":{{}},"initiated":1700000000}}"#
        );
        fs::write(up, raw).unwrap();
        let up = s.upload("bkt", &id).unwrap();
        assert!(up.headers.is_empty());
        assert_eq!(up.storage_class, StorageClass::Standard);
        assert!(up.tags.is_empty());
    }

    /// PutObjectTagging's store side: the tag set replaces the object's in its sidecar and
    /// survives a restart; the body, ETag and Last-Modified stay; a missing key is `NoSuchKey`
    /// and nothing is created.
    #[test]
    fn object_tags_are_replaced_durably() {
        let d = TempDir::new("tags");
        let before = {
            let s = Store::open(&d.0).unwrap();
            s.create_bucket("bkt", "us-east-1", None).unwrap();
            let before = s.put_object("bkt", "k", b"body", None).unwrap();
            let tags = BTreeMap::from([("a".into(), "1".into()), ("b".into(), String::new())]);
            let after = s.set_object_tags("bkt", "k", tags.clone()).unwrap();
            assert_eq!(after.tags, tags);
            assert!(matches!(
                s.set_object_tags("bkt", "nope", tags),
                Err(StoreError::NoSuchKey(_))
            ));
            assert!(s.head_object("bkt", "nope").is_err());
            before
        };
        let s = Store::open(&d.0).unwrap();
        let (m, body) = s.get_object_bytes("bkt", "k").unwrap();
        assert_eq!(body, b"body");
        assert_eq!((&m.etag, m.last_modified), (&before.etag, before.last_modified));
        assert_eq!(m.tags.keys().collect::<Vec<_>>(), ["a", "b"]);
        s.set_object_tags("bkt", "k", BTreeMap::new()).unwrap();
        assert!(Store::open(&d.0).unwrap().head_object("bkt", "k").unwrap().tags.is_empty());
    }
}
