//! `awskms://` key names in cosign's syntax: `awskms://[ENDPOINT]/KEY`, where KEY is a key
//! ID, a key ARN, `alias/NAME` or an alias ARN, and ENDPOINT (optional) is `HOST[:PORT]`
//! reached over HTTPS. Parsing is strict: anything that is not one of these shapes is an
//! error rather than a guess, because a looser reading could send the request elsewhere
//! or name another key. The parser needs no SDK, so it is built and tested without the
//! `kms` feature.

/// A parsed `awskms://` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKmsKeyName {
    /// `HOST[:PORT]` of an endpoint given in the name (reached as `https://HOST[:PORT]`).
    pub endpoint: Option<String>,
    /// The key as AWS KMS takes it (`KeyId` in its API): ID, ARN, alias or alias ARN.
    pub key_id: String,
    /// The region an ARN names; otherwise the SDK's own configuration decides.
    pub region: Option<String>,
}

const SCHEME: &str = "awskms://";
const PARTITIONS: [&str; 3] = ["aws", "aws-us-gov", "aws-cn"];

/// Whether `text` is meant as an AWS KMS key (and must not be read as a file name).
pub fn is_awskms(text: &str) -> bool {
    crate::has_scheme(text, SCHEME)
}

impl AwsKmsKeyName {
    /// Parses `awskms://[ENDPOINT]/KEY`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !is_awskms(text) {
            return Err("not an awskms:// key name".into());
        }
        let rest = &text[SCHEME.len()..];
        let (endpoint, key) = rest.split_once('/').ok_or(
            "the name gives no key; write awskms:///KEY-ID, awskms:///alias/NAME or awskms:///arn:aws:kms:…",
        )?;
        let endpoint = match endpoint {
            "" => None,
            host => Some(check_endpoint(host)?.to_owned()),
        };
        let region = check_key(key)?;
        Ok(Self {
            endpoint,
            key_id: key.to_owned(),
            region,
        })
    }
}

/// `HOST[:PORT]` or `[IPV6]:PORT`, nothing else: no user, path, query or scheme.
fn check_endpoint(host: &str) -> Result<&str, String> {
    let bad = || format!("endpoint {host:?} is not HOST or HOST:PORT (it is reached over https)");
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let (address, after) = v6.split_once(']').ok_or_else(bad)?;
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        match after {
            "" => (address, None),
            port => (address, Some(port.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && (host.starts_with('[')
            || name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
    if name_ok && port_ok {
        Ok(host)
    } else {
        Err(bad())
    }
}

/// Checks the key part and returns the region an ARN names.
fn check_key(key: &str) -> Result<Option<String>, String> {
    if key.is_empty() {
        return Err("the name gives no key after the endpoint".into());
    }
    if let Some(arn) = key.strip_prefix("arn:") {
        let parts: Vec<&str> = arn.splitn(5, ':').collect();
        let [partition, service, region, account, resource] = parts[..] else {
            return Err(format!(
                "{key:?} is not a KMS ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)"
            ));
        };
        if !PARTITIONS.contains(&partition) || service != "kms" {
            return Err(format!(
                "{key:?} is not a KMS ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)"
            ));
        }
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(format!("{key:?}: region {region:?} is not a region name"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{key:?}: account {account:?} is not 12 digits"));
        }
        if let Some(id) = resource.strip_prefix("key/") {
            check_key_id(id)?;
        } else if let Some(alias) = resource.strip_prefix("alias/") {
            check_alias(alias)?;
        } else {
            return Err(format!("{key:?} names neither key/ID nor alias/NAME"));
        }
        return Ok(Some(region.to_owned()));
    }
    if let Some(alias) = key.strip_prefix("alias/") {
        check_alias(alias)?;
    } else {
        check_key_id(key)?;
    }
    Ok(None)
}

/// A key ID: a UUID, or `mrk-` and 32 hex digits (a multi-Region key).
fn check_key_id(id: &str) -> Result<(), String> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let uuid = {
        let groups: Vec<&str> = id.split('-').collect();
        groups.len() == 5
            && [8, 4, 4, 4, 12]
                .iter()
                .zip(&groups)
                .all(|(n, g)| hex(g, *n))
    };
    let multi_region = id.strip_prefix("mrk-").is_some_and(|h| hex(h, 32));
    if uuid || multi_region {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a key ID (a UUID or mrk-…), alias/NAME or KMS ARN"
        ))
    }
}

/// An alias name as AWS allows it: 1 to 250 of `A-Za-z0-9/_-`.
fn check_alias(alias: &str) -> Result<(), String> {
    let ok = (1..=250).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "alias {alias:?} is not an alias name (1 to 250 of A-Z a-z 0-9 / _ -)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn the_shapes_cosign_documents_are_read() {
        let cases = [
            (format!("awskms:///{ID}"), None, ID.to_owned(), None),
            (
                format!("awskms://localhost:4566/{ID}"),
                Some("localhost:4566"),
                ID.to_owned(),
                None,
            ),
            (
                format!("awskms:///arn:aws:kms:us-east-2:111122223333:key/{ID}"),
                None,
                format!("arn:aws:kms:us-east-2:111122223333:key/{ID}"),
                Some("us-east-2"),
            ),
            (
                "awskms:///alias/Example_Alias/x-1".to_owned(),
                None,
                "alias/Example_Alias/x-1".to_owned(),
                None,
            ),
            (
                "awskms://[::1]:8443/arn:aws-cn:kms:cn-north-1:111122223333:alias/a".to_owned(),
                Some("[::1]:8443"),
                "arn:aws-cn:kms:cn-north-1:111122223333:alias/a".to_owned(),
                Some("cn-north-1"),
            ),
            (
                "awskms:///mrk-1234abcd12ab34cd56ef1234567890ab".to_owned(),
                None,
                "mrk-1234abcd12ab34cd56ef1234567890ab".to_owned(),
                None,
            ),
        ];
        for (text, endpoint, key_id, region) in cases {
            assert_eq!(
                AwsKmsKeyName::parse(&text),
                Ok(AwsKmsKeyName {
                    endpoint: endpoint.map(str::to_owned),
                    key_id,
                    region: region.map(str::to_owned),
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "awskms://",
            "awskms:///",
            "awskms://localhost:4566",
            "awskms:///not-a-key",
            "awskms:///alias/",
            "awskms:///alias/a b",
            "awskms:///alias/a?x=1",
            "awskms://user@host/alias/a",
            "awskms://host:0/alias/a",
            "awskms://host:99999/alias/a",
            "awskms://host:port/alias/a",
            "awskms://http:/alias/a",
            "awskms://[::1/alias/a",
            "awskms://[nothost]:1/alias/a",
            "awskms:///arn:aws:s3:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "awskms:///arn:aws:kms:us-east-1:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "awskms:///arn:aws:kms:US-EAST-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "awskms:///arn:aws:kms:us-east-1:111122223333:grant/x",
            "awskms:///arn:other:kms:us-east-1:111122223333:alias/x",
            "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab/extra",
            "gcpkms://x/y",
        ] {
            assert!(AwsKmsKeyName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_scheme_is_recognised_in_any_case() {
        assert!(is_awskms("AWSKMS:///alias/a"));
        assert!(!is_awskms("awskms:/alias/a"));
        assert!(!is_awskms("./awskms"));
    }
}
