//! `renewd import-certbot` against a directory laid out as certbot leaves it.

use std::path::Path;

use crate::fixture::run_renewd;

/// Writes `/etc/letsencrypt`-style files for lineage `name` under `root`.
fn certbot_lineage(root: &Path, name: &str, domains: &[&str], matching_key: bool) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let params =
        rcgen::CertificateParams::new(domains.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap().pem();
    let key_pem = if matching_key {
        key.serialize_pem()
    } else {
        rcgen::KeyPair::generate().unwrap().serialize_pem()
    };
    let archive = root.join("archive").join(name);
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(root.join("live").join(name)).unwrap();
    std::fs::create_dir_all(root.join("renewal")).unwrap();
    for (file, content) in [
        ("cert1.pem", &cert),
        ("chain1.pem", &cert),
        ("fullchain1.pem", &format!("{cert}{cert}")),
        ("privkey1.pem", &key_pem),
    ] {
        std::fs::write(archive.join(file), content).unwrap();
        let link = root.join("live").join(name).join(file.replace('1', ""));
        std::os::unix::fs::symlink(archive.join(file), link).unwrap();
    }
    let live = root.join("live").join(name);
    std::fs::write(
        root.join("renewal").join(format!("{name}.conf")),
        format!(
            "version = 2.11.0\narchive_dir = {archive}\ncert = {live}/cert.pem\nprivkey = {live}/privkey.pem\n\
             chain = {live}/chain.pem\nfullchain = {live}/fullchain.pem\n\n[renewalparams]\n\
             authenticator = webroot\nserver = https://acme-v02.api.letsencrypt.org/directory\n\
             [[webroot_map]]\n{domain} = /var/www/html\n",
            archive = archive.display(),
            live = live.display(),
            domain = domains[0],
        ),
    )
    .unwrap();
}

#[test]
fn certbot_lineages_are_adopted_and_a_config_is_suggested() {
    let dir = tempfile::tempdir().unwrap();
    let letsencrypt = dir.path().join("letsencrypt");
    certbot_lineage(
        &letsencrypt,
        "example.com",
        &["example.com", "www.example.com"],
        true,
    );
    certbot_lineage(&letsencrypt, "broken.example", &["broken.example"], false);
    let state = dir.path().join("state");
    let config = dir.path().join("renewd.toml");
    std::fs::write(
        &config,
        format!("[daemon]\nstate_dir = \"{}\"\n", state.display()),
    )
    .unwrap();

    let run = run_renewd(&config, &["import-certbot", letsencrypt.to_str().unwrap()]);
    assert_eq!(run.code, 1, "one lineage is broken: {run:?}");
    assert!(
        run.stderr.contains("example.com: imported as version 1"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("broken.example.conf: privkey does not belong to cert; not imported"),
        "{run:?}"
    );
    assert!(run.stdout.contains("name = \"example.com\"\ndomains = [\"example.com\", \"www.example.com\"]\nkey = \"ecdsa-p384\""), "{run:?}");
    assert!(
        run.stdout.contains("webroot = \"/var/www/html\""),
        "{run:?}"
    );

    let store = renewd::store::Store::open(&state).unwrap();
    let lineage = store.lineage("example.com").unwrap().unwrap();
    assert!(lineage.key_matches);
    assert!(store.lineage("broken.example").unwrap().is_none());
}
