//! Certificate chain rules of `spec/oms.md` §5, one test chain per rule. The chains are
//! made by `testdata/certs/make_chains.py`.

use std::path::Path;

use modelseal_verify::certs::{CertificateError, ValidityTime, verify_chain};

fn der(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/certs/chains")
        .join(format!("{name}.pem"));
    let pem = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    modelseal_core::certificates_from_pem(&pem)
        .unwrap()
        .remove(0)
}

fn check(leaf: &str, intermediates: &[&str], root: &str) -> Result<String, CertificateError> {
    let mut chain = vec![der(leaf)];
    chain.extend(intermediates.iter().map(|n| der(n)));
    verify_chain(&chain, &[der(root)], ValidityTime::LeafIssuance).map(|c| c.subject)
}

#[test]
fn a_good_chain_verifies_and_names_the_leaf() {
    assert_eq!(check("leaf-ok", &["int"], "root").unwrap(), "CN=leaf-ok");
    // The extended key usage alone is enough, as in model-signing.
    assert_eq!(
        check("leaf-eku-only", &["int"], "root").unwrap(),
        "CN=leaf-eku-only"
    );
    // Unrelated certificates in the bundle are skipped during path building.
    assert_eq!(
        check("leaf-ok", &["other-root", "sub", "int"], "root").unwrap(),
        "CN=leaf-ok"
    );
}

#[test]
fn an_expired_leaf_is_judged_at_its_issuance() {
    // Valid 2021-2022: expired now, valid when issued under a CA valid since 2020.
    assert_eq!(
        check("leaf-expired", &["int"], "root").unwrap(),
        "CN=leaf-expired"
    );
    // Checked at the current time instead, it is refused.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let err = verify_chain(
        &[der("leaf-expired"), der("int")],
        &[der("root")],
        ValidityTime::At(now),
    )
    .unwrap_err();
    assert!(matches!(err, CertificateError::Expired { .. }), "{err}");
}

#[test]
fn each_broken_rule_is_named() {
    let cases: [(&str, &[&str], &str, &str); 7] = [
        ("leaf-before-ca", &["int"], "root", "was not valid at"),
        ("leaf-server", &["int"], "root", "is not for signing"),
        (
            "leaf-by-leaf",
            &["leaf-ok", "int"],
            "root",
            "may not issue certificates",
        ),
        (
            "leaf-too-deep",
            &["sub", "int"],
            "root",
            "may not issue certificates",
        ),
        (
            "leaf-unknown-critical",
            &["int"],
            "root",
            "unknown critical extension 1.3.6.1.4.1.99999.1",
        ),
        (
            "leaf-ok",
            &["int"],
            "other-root",
            "does not chain to a trusted root",
        ),
        (
            "leaf-ok",
            &[],
            "root",
            "does not chain to a trusted root: no valid issuer \"CN=test-int\"",
        ),
    ];
    for (leaf, intermediates, root, message) in cases {
        let err = check(leaf, intermediates, root).unwrap_err();
        assert!(
            err.to_string().contains(message),
            "{leaf} via {intermediates:?} to {root}: {err}"
        );
    }
    let err = verify_chain(&[], &[der("root")], ValidityTime::LeafIssuance).unwrap_err();
    assert!(matches!(err, CertificateError::Missing));
    let err = verify_chain(
        &[vec![0x30, 0x00]],
        &[der("root")],
        ValidityTime::LeafIssuance,
    )
    .unwrap_err();
    assert!(matches!(err, CertificateError::Malformed(_)), "{err}");
}

#[test]
fn a_maze_of_look_alike_issuers_is_given_up_on_quickly() {
    // 40 CA certificates with one name and one key: each seems to issue every other,
    // and none leads to the trusted root (testdata/certs/make_maze.py).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/certs/chains/maze.pem");
    let chain =
        modelseal_core::certificates_from_pem(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(chain.len(), 41);
    let started = std::time::Instant::now();
    let err = verify_chain(&chain, &[der("root")], ValidityTime::LeafIssuance).unwrap_err();
    assert!(matches!(err, CertificateError::PathBudget), "{err}");
    // A generous bound: the budget is 64 checks, each well under a millisecond.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The same leaf with one of them only still fails, for the ordinary reason.
    let err = verify_chain(&chain[..2], &[der("root")], ValidityTime::LeafIssuance).unwrap_err();
    assert!(matches!(err, CertificateError::NoPath { .. }), "{err}");
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// 2036-01-01, inside the window of `leaf-future` (2035 to 2039). Until 2035 that leaf
/// is not yet valid; the test says so when the clock passes it, rather than pass
/// vacuously (`testdata/certs/make_chains.py` then needs a later window).
const IN_2036: u64 = 2_082_758_400;

#[test]
fn a_leaf_not_yet_valid_is_refused_now_and_accepted_at_a_time_inside_its_window() {
    assert!(
        now() < 2_051_222_400,
        "leaf-future (valid from 2035) is no longer in the future: re-make the test chains with a later window"
    );
    let chain = [der("leaf-future"), der("int")];
    let err = verify_chain(&chain, &[der("root")], ValidityTime::At(now())).unwrap_err();
    assert!(
        matches!(err, CertificateError::Expired { ref subject, .. } if subject == "CN=leaf-future"),
        "{err}"
    );
    let ok = verify_chain(&chain, &[der("root")], ValidityTime::At(IN_2036)).unwrap();
    assert_eq!(ok.subject, "CN=leaf-future");
}

#[test]
fn a_self_signed_certificate_named_as_the_root_verifies_as_the_leaf() {
    let leaf = der("self-signed");
    let ok = verify_chain(
        std::slice::from_ref(&leaf),
        std::slice::from_ref(&leaf),
        ValidityTime::At(now()),
    )
    .unwrap();
    assert_eq!(ok.subject, "CN=self-signed");
    // Not named: it is only a certificate that claims to have issued itself.
    let err = verify_chain(
        std::slice::from_ref(&leaf),
        &[der("root")],
        ValidityTime::At(now()),
    )
    .unwrap_err();
    assert!(matches!(err, CertificateError::NoPath { .. }), "{err}");
    // Named as a root, its validity still holds: outside it, refused.
    let err = verify_chain(
        std::slice::from_ref(&leaf),
        std::slice::from_ref(&leaf),
        ValidityTime::At(IN_2036 + 5 * 365 * 86_400),
    )
    .unwrap_err();
    assert!(matches!(err, CertificateError::Expired { .. }), "{err}");
    // Named as a root, a certificate for TLS servers is still not for signing.
    let server = der("self-signed-server");
    let err = verify_chain(
        std::slice::from_ref(&server),
        std::slice::from_ref(&server),
        ValidityTime::At(now()),
    )
    .unwrap_err();
    assert!(matches!(err, CertificateError::Usage(_)), "{err}");
    // A root with another leaf's bytes is not this leaf.
    let err = verify_chain(&[der("leaf-ok")], &[leaf], ValidityTime::At(now())).unwrap_err();
    assert!(matches!(err, CertificateError::NoPath { .. }), "{err}");
}

#[test]
fn a_self_signed_leaf_with_other_certificates_carried_is_not_trusted_as_itself() {
    // OpenSSL builds through the carried certificates before it looks at the trusted
    // leaf, and refuses when one of them may not issue; modelseal must not accept more.
    let leaf = der("self-signed");
    let err = verify_chain(
        &[leaf.clone(), der("leaf-ok")],
        std::slice::from_ref(&leaf),
        ValidityTime::At(now()),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            CertificateError::NoPath { .. } | CertificateError::NotCa(_)
        ),
        "{err}"
    );
}

#[test]
fn the_not_after_second_is_already_outside_the_window() {
    // OpenSSL (model-signing's checker) counts a certificate as expired at its notAfter
    // second; RFC 5280 does not. The stricter reading keeps the two in agreement.
    let chain = [der("leaf-expired"), der("int")];
    let issued = verify_chain(&chain, &[der("root")], ValidityTime::LeafIssuance).unwrap();
    let last = issued.not_after;
    verify_chain(&chain, &[der("root")], ValidityTime::At(last - 1)).unwrap();
    let err = verify_chain(&chain, &[der("root")], ValidityTime::At(last)).unwrap_err();
    assert!(
        matches!(err, CertificateError::Expired { ref subject, .. } if subject == "CN=leaf-expired"),
        "{err}"
    );
}
