//! Registry credentials, found the way other registry clients find them (`spec/oci.md`
//! §6), and the `WWW-Authenticate` challenge a registry answers an anonymous request with.

use std::collections::BTreeMap;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Basic credentials, sent to the token service (or the registry itself).
    UsernamePassword(String, String),
    /// A refresh token (`identitytoken` in a Docker config), exchanged for an access token.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UsernamePassword(user, _) => write!(f, "UsernamePassword({user:?}, ***)"),
            Self::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

/// Environment variables that give credentials for the one registry named by
/// [`HOST_ENV`] (CI jobs set these; they win over any file). Without it they are not
/// used: a reference to any other host (which a Pod author may choose) must never
/// receive them.
pub const USERNAME_ENV: &str = "MODELSEAL_REGISTRY_USERNAME";
/// See [`USERNAME_ENV`].
pub const PASSWORD_ENV: &str = "MODELSEAL_REGISTRY_PASSWORD";
/// The registry (`host[:port]`, as written in references) the environment credentials
/// are for.
pub const HOST_ENV: &str = "MODELSEAL_REGISTRY_HOST";

/// The credentials for `registry`, in this order: the environment variables, when
/// [`HOST_ENV`] names this registry; the
/// Docker config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, with its
/// `credsStore` and `credHelpers`); the containers auth file (`$REGISTRY_AUTH_FILE` or
/// `$XDG_RUNTIME_DIR/containers/auth.json`, podman's and skopeo's). None found: anonymous.
pub fn find_credential(registry: &str) -> Option<Credential> {
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    if let (Some(user), Some(password), Some(host)) =
        (env(USERNAME_ENV), env(PASSWORD_ENV), env(HOST_ENV))
    {
        if host == registry {
            return Some(Credential::UsernamePassword(user, password));
        }
    }
    let convert = |c: docker_credential::DockerCredential| match c {
        docker_credential::DockerCredential::UsernamePassword(u, p) => {
            Credential::UsernamePassword(u, p)
        }
        docker_credential::DockerCredential::IdentityToken(t) => Credential::IdentityToken(t),
    };
    let docker_hub = registry == "docker.io";
    let names: &[&str] = if docker_hub {
        &["https://index.docker.io/v1/", "docker.io"]
    } else {
        &[registry]
    };
    for name in names {
        if let Ok(c) = docker_credential::get_credential(name) {
            return Some(convert(c));
        }
        if let Ok(c) = docker_credential::get_podman_credential(name) {
            return Some(convert(c));
        }
    }
    None
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Bearer realm="…",service="…",scope="…"`: get a token from `realm`.
    Bearer {
        /// The token service URL.
        realm: String,
        /// Its `service` parameter, if any.
        service: Option<String>,
        /// The scope the registry asked for, if any.
        scope: Option<String>,
    },
    /// `Basic realm="…"`: send the credentials to the registry itself.
    Basic,
}

/// Parses a challenge; `None` for schemes modelseal does not speak.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params)?;
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key=token, …` (RFC 7235 auth-params), quoted strings with `\` escapes.
fn parse_params(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.to_ascii_lowercase(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/x:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"bearer realm = "a\"b" , service=s"#),
            Some(Challenge::Bearer {
                realm: "a\"b".into(),
                service: Some("s".into()),
                scope: None,
            })
        );
        for bad in [
            "Negotiate abc",
            "Bearer",
            r#"Bearer service="s""#,
            r#"Bearer realm="unterminated"#,
            "Bearer =x",
        ] {
            assert_eq!(parse_challenge(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = Credential::UsernamePassword("u".into(), "hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
