//! The S3 sink: `{prefix}/{bundle}/bundle.tar.gz` and `manifest.json`, one PUT below the
//! multipart threshold and parts above it, every body sent with Content-MD5 and every returned
//! ETag checked, then a HEAD to confirm size and the sha256 stored in the object's metadata.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use base64::Engine;
use md5::{Digest, Md5};
use tokio::sync::OnceCell;

use super::bundle::hex;
use super::config::S3Section;
use super::sink::{Upload, BUNDLE_OBJECT, MANIFEST_OBJECT};
use super::ArchiveError;

/// One S3 call, connection included, may take this long before the attempt counts as failed.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct S3Sink {
    pub bucket: String,
    pub region: String,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Built on first use: loading credentials from the chain is async and may be slow.
    client: Arc<OnceCell<Client>>,
}

impl S3Sink {
    pub fn new(section: &S3Section) -> Self {
        Self {
            bucket: section.bucket.get_ref().clone(),
            region: section.region.clone(),
            prefix: section.prefix.trim_matches('/').to_string(),
            endpoint: section.endpoint.as_ref().map(|e| e.get_ref().clone()),
            path_style: section.path_style,
            multipart_threshold: section.multipart_threshold.bytes(),
            part_size: section.part_size.get_ref().bytes(),
            client: Arc::default(),
        }
    }

    /// Same settings as `other` (the client is kept across reloads that change nothing).
    pub fn same_settings(&self, other: &S3Sink) -> bool {
        (
            &self.bucket,
            &self.region,
            &self.prefix,
            &self.endpoint,
            self.path_style,
            self.multipart_threshold,
            self.part_size,
        ) == (
            &other.bucket,
            &other.region,
            &other.prefix,
            &other.endpoint,
            other.path_style,
            other.multipart_threshold,
            other.part_size,
        )
    }

    fn key(&self, name: &str, object: &str) -> String {
        match self.prefix.is_empty() {
            true => format!("{name}/{object}"),
            false => format!("{}/{name}/{object}", self.prefix),
        }
    }

    pub fn destination(&self, name: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(name, ""))
    }

    async fn client(&self) -> Client {
        self.client
            .get_or_init(|| async {
                use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .build_https();
                let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(Region::new(self.region.clone()))
                    .http_client(http)
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .operation_timeout(OPERATION_TIMEOUT)
                            .build(),
                    )
                    .load()
                    .await;
                // Content-MD5 and ETags are what every S3-compatible store verifies; the newer
                // flexible checksums are not, so they are sent only where S3 requires them.
                let mut config = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(self.path_style)
                    .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
                if let Some(endpoint) = &self.endpoint {
                    config = config.endpoint_url(endpoint);
                }
                Client::from_conf(config.build())
            })
            .await
            .clone()
    }

    pub async fn upload(&self, upload: &Upload) -> Result<String, ArchiveError> {
        let client = self.client().await;
        let manifest = read_range(&upload.manifest_path, 0, u64::MAX).await?;
        self.put(
            &client,
            &self.key(&upload.name, MANIFEST_OBJECT),
            manifest,
            None,
        )
        .await?;
        let key = self.key(&upload.name, BUNDLE_OBJECT);
        if upload.bytes >= self.multipart_threshold {
            self.put_multipart(&client, &key, upload).await?;
        } else {
            let body = read_range(&upload.path, 0, u64::MAX).await?;
            self.put(&client, &key, body, Some(&upload.sha256)).await?;
        }
        let head = client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|err| failed("HEAD", &key, err))?;
        let stored_sha = head.metadata().and_then(|m| m.get("sha256")).cloned();
        if head.content_length() != Some(upload.bytes as i64)
            || stored_sha.as_deref() != Some(upload.sha256.as_str())
        {
            return Err(ArchiveError::Upload(format!(
                "s3://{}/{key} holds {:?} bytes with sha256 {stored_sha:?}; expected {} bytes, {}",
                self.bucket,
                head.content_length(),
                upload.bytes,
                upload.sha256
            )));
        }
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    async fn put(
        &self,
        client: &Client,
        key: &str,
        body: Vec<u8>,
        sha256: Option<&str>,
    ) -> Result<(), ArchiveError> {
        let md5 = Md5::digest(&body);
        let mut request = client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_md5(base64::engine::general_purpose::STANDARD.encode(md5))
            .body(ByteStream::from(body));
        if let Some(sha256) = sha256 {
            request = request.metadata("sha256", sha256);
        }
        let output = request
            .send()
            .await
            .map_err(|err| failed("PUT", key, err))?;
        check_etag(key, output.e_tag(), &hex(&md5))
    }

    async fn put_multipart(
        &self,
        client: &Client,
        key: &str,
        upload: &Upload,
    ) -> Result<(), ArchiveError> {
        let created = client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .metadata("sha256", &upload.sha256)
            .send()
            .await
            .map_err(|err| failed("CreateMultipartUpload", key, err))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let result = self.send_parts(client, key, &upload_id, upload).await;
        if result.is_err() {
            // Parts of an abandoned upload are billed until aborted.
            let _ = client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn send_parts(
        &self,
        client: &Client,
        key: &str,
        upload_id: &str,
        upload: &Upload,
    ) -> Result<(), ArchiveError> {
        let mut parts = Vec::new();
        let mut part_md5s = Vec::new();
        let mut offset = 0;
        let mut number = 1;
        while offset < upload.bytes {
            let body = read_range(&upload.path, offset, self.part_size).await?;
            offset += body.len() as u64;
            let md5 = Md5::digest(&body);
            let output = client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_md5(base64::engine::general_purpose::STANDARD.encode(md5))
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|err| failed("UploadPart", key, err))?;
            check_etag(key, output.e_tag(), &hex(&md5))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(output.e_tag().map(String::from))
                    .build(),
            );
            part_md5s.extend_from_slice(&md5);
            number += 1;
        }
        let output = client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|err| failed("CompleteMultipartUpload", key, err))?;
        // A multipart ETag is the MD5 of the parts' MD5s, then "-" and the part count.
        let expected = format!("{}-{}", hex(&Md5::digest(&part_md5s)), number - 1);
        check_etag(key, output.e_tag(), &expected)
    }
}

fn check_etag(key: &str, etag: Option<&str>, expected: &str) -> Result<(), ArchiveError> {
    let etag = etag.unwrap_or_default().trim_matches('"');
    if etag != expected {
        return Err(ArchiveError::Upload(format!(
            "{key}: S3 answered ETag {etag:?}, expected {expected} (the object differs from what was sent)"
        )));
    }
    Ok(())
}

fn failed(call: &str, key: &str, err: impl std::error::Error) -> ArchiveError {
    // The SDK's Display is terse ("dispatch failure"); its source chain says why.
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    ArchiveError::Upload(format!("S3 {call} {key}: {text}"))
}

/// Up to `length` bytes of `path` from `offset`, read off the async threads.
async fn read_range(path: &Path, offset: u64, length: u64) -> Result<Vec<u8>, ArchiveError> {
    let path = path.to_path_buf();
    crate::panic_policy::run_blocking(move || {
        let io = |source| ArchiveError::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&path).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(length).read_to_end(&mut bytes).map_err(io)?;
        Ok(bytes)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_prefix_bundle_object() {
        let section: S3Section =
            toml::from_str("bucket = \"ev\"\nprefix = \"/sentinel/\"").unwrap();
        let sink = S3Sink::new(&section);
        assert_eq!(
            sink.key("20260101T000000Z-pg", BUNDLE_OBJECT),
            "sentinel/20260101T000000Z-pg/bundle.tar.gz"
        );
        assert_eq!(sink.destination("x"), "s3://ev/sentinel/x/");
        let bare = S3Sink::new(&toml::from_str("bucket = \"ev\"").unwrap());
        assert_eq!(bare.key("x", MANIFEST_OBJECT), "x/manifest.json");
        assert!(check_etag("k", Some("\"abc\""), "abc").is_ok());
        assert!(check_etag("k", None, "abc").is_err());
    }
}
