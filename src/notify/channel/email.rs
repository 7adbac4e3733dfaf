//! Email over SMTP through lettre on rustls (ring): STARTTLS (required, never silently plain),
//! implicit TLS, or plain for a local relay; the system trust store or the channel's `ca_file`.

use std::path::PathBuf;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Map, Value};
use thiserror::Error;

use super::super::compose::Notification;
use super::super::config::{ChannelSection, SmtpTls};
use super::{headline, Reply, SEND_TIMEOUT};

/// The stored message: subject and plain-text body (sender and recipients join at send time).
pub fn body(n: &Notification, text: &str, footer: &str) -> Value {
    json!({
        "subject": headline(n),
        "text": format!("{text}\n\n-- \n{footer}\n"),
    })
}

/// One email channel's server, credentials and addresses.
#[derive(Clone)]
pub struct Smtp {
    host: String,
    port: u16,
    tls: SmtpTls,
    ca_file: Option<PathBuf>,
    credentials: Option<(String, String)>,
    from: String,
    to: Vec<String>,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

/// Why an email was not accepted. Never holds the password.
#[derive(Debug, Error)]
pub enum EmailError {
    #[error("cannot read ca_file {}: {source}", .path.display())]
    ReadCaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS setup for {server}: {source}")]
    TlsSetup {
        server: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("invalid address: {0}")]
    Address(#[from] lettre::address::AddressError),
    #[error("cannot compose the email: {0}")]
    Compose(#[from] lettre::error::Error),
    /// The stored message lacks its subject or text.
    #[error("the stored email has no {0}")]
    Stored(&'static str),
    #[error("SMTP {server}: no answer within {}", humantime::format_duration(*.after))]
    Timeout {
        server: String,
        after: std::time::Duration,
    },
    /// Connecting, TLS, AUTH or the server's refusal of the message.
    #[error("SMTP {server}: {}", crate::logging::error_chain(.source))]
    Smtp {
        server: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

impl EmailError {
    /// The server's reply code and text when it refused.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            Self::Smtp { source, .. } => source
                .status()
                .map(|code| Reply::new(u16::from(code), &source.to_string())),
            _ => None,
        }
    }
}

impl Smtp {
    pub fn from_section(section: &ChannelSection) -> Option<Self> {
        let credentials = match &section.username {
            Some(user) => Some((
                user.get_ref().clone(),
                section.resolved_password()?.to_string(),
            )),
            None => None,
        };
        Some(Self {
            host: section.host.as_ref()?.get_ref().trim().to_string(),
            port: section.smtp_port(),
            tls: section.smtp_tls(),
            ca_file: section.ca_file.as_ref().map(|f| f.get_ref().clone()),
            credentials,
            from: section.from.as_ref()?.get_ref().clone(),
            to: section.to.as_ref()?.get_ref().clone(),
        })
    }

    fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn tls_parameters(&self) -> Result<TlsParameters, EmailError> {
        let mut builder = TlsParameters::builder(self.host.clone());
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path).map_err(|source| EmailError::ReadCaFile {
                path: path.clone(),
                source,
            })?;
            let ca = Certificate::from_pem(&pem).map_err(|source| EmailError::TlsSetup {
                server: self.server(),
                source,
            })?;
            builder = builder
                .certificate_store(CertificateStore::None)
                .add_root_certificate(ca);
        }
        builder
            .build_rustls()
            .map_err(|source| EmailError::TlsSetup {
                server: self.server(),
                source,
            })
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, EmailError> {
        let tls = match self.tls {
            SmtpTls::Starttls => Tls::Required(self.tls_parameters()?),
            SmtpTls::Tls => Tls::Wrapper(self.tls_parameters()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(SEND_TIMEOUT));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder.build())
    }

    /// Send the stored `message` (subject, text) from `from` to every `to`.
    pub async fn send(&self, message: &Map<String, Value>) -> Result<Reply, EmailError> {
        let field = |name: &'static str| {
            message
                .get(name)
                .and_then(Value::as_str)
                .ok_or(EmailError::Stored(name))
        };
        let mut email = Message::builder()
            .from(self.from.parse::<Mailbox>()?)
            .subject(field("subject")?)
            .header(ContentType::TEXT_PLAIN)
            .user_agent(concat!("sentineld/", env!("CARGO_PKG_VERSION")).to_string());
        for to in &self.to {
            email = email.to(to.parse::<Mailbox>()?);
        }
        let email = email.body(field("text")?.to_string())?;
        let transport = self.transport()?;
        // lettre bounds each read and write; this bounds the whole conversation.
        let response = tokio::time::timeout(SEND_TIMEOUT * 3, transport.send(email))
            .await
            .map_err(|_| EmailError::Timeout {
                server: self.server(),
                after: SEND_TIMEOUT * 3,
            })?
            .map_err(|source| EmailError::Smtp {
                server: self.server(),
                source,
            })?;
        let text: Vec<&str> = response.message().collect();
        Ok(Reply::new(u16::from(response.code()), &text.join(" ")))
    }
}
