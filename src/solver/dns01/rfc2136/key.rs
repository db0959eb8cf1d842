//! TSIG key files in BIND's format, as `tsig-keygen` writes them.

use std::path::Path;

use base64::Engine;
use hickory_proto::dnssec::DnsSecError;
use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_proto::dnssec::tsig::TSigner;
use hickory_proto::rr::Name;

use super::FUDGE;
use super::error::{Error, KeyError};

/// A TSIG key as BIND writes it: `key "name" { algorithm hmac-sha256; secret "base64"; };`
#[derive(Clone, PartialEq, Eq)]
pub(in crate::solver::dns01) struct TsigKey {
    /// Key name, as the server knows it.
    pub(super) name: Name,
    pub(super) algorithm: TsigAlgorithm,
    pub(super) secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &crate::secret::Redacted(&self.secret))
            .finish()
    }
}

impl TsigKey {
    /// Reads and parses the key file at `path`.
    pub(super) async fn read(path: &Path) -> Result<Self, Error> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|source| Error::ReadKey {
                path: path.to_owned(),
                source,
            })?;
        Self::parse(&text).map_err(|source| Error::ParseKey {
            path: path.to_owned(),
            source,
        })
    }

    /// A signer for requests with this key.
    pub(super) fn signer(&self) -> Result<TSigner, DnsSecError> {
        TSigner::new(
            self.secret.clone(),
            self.algorithm.clone(),
            self.name.clone(),
            FUDGE,
        )
    }

    /// Parses the first `key` statement of a BIND key file (comments allowed).
    pub(super) fn parse(text: &str) -> Result<Self, KeyError> {
        let mut tokens = tokens(text)?.into_iter();
        let mut next = || tokens.next().ok_or(KeyError::UnexpectedEnd);
        if !matches!(next()?, Token::Word(w) if w.eq_ignore_ascii_case("key")) {
            return Err(KeyError::Syntax);
        }
        let Token::Word(name) = next()? else {
            return Err(KeyError::Syntax);
        };
        if next()? != Token::Open {
            return Err(KeyError::Syntax);
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            let statement = match next()? {
                Token::Close => break,
                Token::Word(w) => w.to_ascii_lowercase(),
                _ => return Err(KeyError::Syntax),
            };
            let (Token::Word(value), Token::Semi) = (next()?, next()?) else {
                return Err(KeyError::Statement { statement });
            };
            match statement.as_str() {
                "algorithm" => algorithm = Some(value),
                "secret" => secret = Some(value),
                _ => {}
            }
        }
        let name = match Name::from_ascii(&name) {
            Ok(parsed) => parsed,
            Err(source) => return Err(KeyError::Name { name, source }),
        };
        let algorithm = algorithm.ok_or(KeyError::NoAlgorithm)?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.ok_or(KeyError::NoSecret)?.as_bytes())
            .map_err(KeyError::Secret)?;
        Ok(Self {
            name,
            algorithm: algorithm_named(&algorithm)?,
            secret,
        })
    }
}

fn algorithm_named(name: &str) -> Result<TsigAlgorithm, KeyError> {
    match name.to_ascii_lowercase().as_str() {
        "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        other => Err(KeyError::Algorithm(other.to_owned())),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Open,
    Close,
    Semi,
}

/// BIND config tokens: words or quoted strings, braces, semicolons; `#`,
/// `//` and `/* */` comments are skipped.
fn tokens(text: &str) -> Result<Vec<Token>, KeyError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' => tokens.push(Token::Open),
            '}' => tokens.push(Token::Close),
            ';' => tokens.push(Token::Semi),
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                loop {
                    match chars.next() {
                        Some('/') if last == '*' => break,
                        Some(c) => last = c,
                        None => return Err(KeyError::UnterminatedComment),
                    }
                }
            }
            '"' => {
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => word.push(c),
                        None => return Err(KeyError::UnterminatedString),
                    }
                }
                tokens.push(Token::Word(word));
            }
            c if c.is_whitespace() => {}
            c => {
                let mut word = c.to_string();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "{};\"#".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if c == '\n' {
            break;
        }
    }
}
