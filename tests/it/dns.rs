//! dns-01 end to end, Pebble validating for real each time: rfc2136 against a
//! real BIND with a TSIG key from `tsig-keygen`, cloudflare against a local
//! fake of its API that publishes through challtestsrv, and exec with a hook
//! that does the same.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::{Value, json};

use crate::fixture::{Env, free_port, verify_chain, wait_until};

/// Writes a secret file the way the config check wants it (0600).
fn write_secret(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Writes an executable script.
fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// One UDP query, no recursion; `None` when nothing answers within a second.
fn dns_query(server: SocketAddr, name: &str, rtype: RecordType) -> Option<Message> {
    let mut request = Message::new();
    request
        .set_id(rand::random())
        .add_query(Query::query(Name::from_ascii(name).ok()?, rtype));
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    socket.send_to(&request.to_vec().ok()?, server).ok()?;
    let mut buf = [0u8; 4096];
    let len = socket.recv(&mut buf).ok()?;
    Message::from_vec(&buf[..len]).ok()
}

/// The TXT values at `name` as `server` answers them.
fn txt_values(server: SocketAddr, name: &str) -> Vec<String> {
    let reply = dns_query(server, name, RecordType::TXT).expect("DNS answer");
    reply
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::TXT(txt) => Some(txt.to_string()),
            _ => None,
        })
        .collect()
}

/// The certificate's domains, sorted.
fn issued_domains(env: &Env, name: &str) -> Vec<String> {
    let lineage = env.store().lineage(name).unwrap().expect("a lineage");
    assert!(lineage.key_matches, "key does not match");
    let mut domains = lineage.cert.domains.clone();
    domains.sort();
    domains
}

fn sorted(domains: &[&str]) -> Vec<String> {
    let mut domains: Vec<String> = domains.iter().map(|d| (*d).to_owned()).collect();
    domains.sort();
    domains
}

// ---------------------------------------------------------------- rfc2136

const KEY_NAME: &str = "renewd-test";

/// A real BIND (`named -g`) serving the zones `dns.test` and `acme.test` on a
/// loopback port, updatable with a TSIG key made by `tsig-keygen`; killed on
/// drop. `_acme-challenge.alias.dns.test` is a CNAME into `acme.test`; recursion
/// is on so that Pebble, which asks this server, follows it from one zone into
/// the other as a CA's resolver does.
struct Bind {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// The key file, mode 0600, as `tsig-keygen` wrote it.
    key_file: PathBuf,
}

/// `/usr/sbin/NAME` when there (root's PATH may lack /usr/sbin), else `NAME`.
fn sbin(name: &str) -> PathBuf {
    let path = Path::new("/usr/sbin").join(name);
    if path.exists() {
        path
    } else {
        PathBuf::from(name)
    }
}

impl Bind {
    fn start(parent: &Path) -> Self {
        let dir = parent.join("bind");
        std::fs::create_dir_all(&dir).expect("bind dir");
        let keygen = Command::new(sbin("tsig-keygen"))
            .args(["-a", "hmac-sha256", KEY_NAME])
            .output()
            .expect("run tsig-keygen (package bind9-utils)");
        assert!(keygen.status.success(), "tsig-keygen: {keygen:?}");
        let key_file = dir.join("tsig.key");
        write_secret(&key_file, &String::from_utf8_lossy(&keygen.stdout));
        std::fs::write(
            dir.join("dns.test.zone"),
            "$TTL 60\n\
             @   IN SOA ns1.dns.test. hostmaster.dns.test. 1 3600 600 86400 60\n\
             \x20   IN NS  ns1.dns.test.\n\
             ns1 IN A   127.0.0.1\n\
             _acme-challenge.alias IN CNAME _acme-challenge.alias.acme.test.\n",
        )
        .expect("zone file");
        std::fs::write(
            dir.join("acme.test.zone"),
            "$TTL 60\n\
             @   IN SOA ns1.dns.test. hostmaster.dns.test. 1 3600 600 86400 60\n\
             \x20   IN NS  ns1.dns.test.\n",
        )
        .expect("zone file");
        let port = free_port();
        let d = dir.display();
        let conf = dir.join("named.conf");
        std::fs::write(
            &conf,
            format!(
                "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  \
                 session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n  \
                 dump-file \"{d}/dump.db\";\n  statistics-file \"{d}/named.stats\";\n  \
                 listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  \
                 recursion yes;\n  allow-recursion {{ 127.0.0.1; }};\n  dnssec-validation no;\n  notify no;\n}};\n\
                 controls {{ }};\ninclude \"{}\";\n\
                 zone \"dns.test\" {{\n  type primary;\n  file \"{d}/dns.test.zone\";\n  \
                 allow-update {{ key \"{KEY_NAME}\"; }};\n}};\n\
                 zone \"acme.test\" {{\n  type primary;\n  file \"{d}/acme.test.zone\";\n  \
                 allow-update {{ key \"{KEY_NAME}\"; }};\n}};\n",
                key_file.display()
            ),
        )
        .expect("named.conf");
        let child = Command::new(sbin("named"))
            .args(["-g", "-4", "-n", "1", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("named.log")).expect("named.log"))
            .spawn()
            .expect("start named (package bind9)");
        let mut bind = Self {
            child,
            port,
            dir,
            key_file,
        };
        let addr = bind.addr();
        wait_until(Duration::from_secs(15), "BIND to serve dns.test", || {
            assert!(
                matches!(bind.child.try_wait(), Ok(None)),
                "named exited:\n{}",
                bind.log()
            );
            dns_query(addr, "dns.test.", RecordType::SOA)
                .is_some_and(|m| m.response_code() == ResponseCode::NoError)
        });
        bind
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default()
    }

    fn solver_toml(&self, key_file: &Path) -> String {
        format!(
            "[solver.dns]\ntype = \"dns-01\"\nprovider = \"rfc2136\"\nserver = \"{}\"\n\
             tsig_key_file = \"{}\"\npropagation_timeout = \"20s\"\n",
            self.addr(),
            key_file.display()
        )
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const WILDCARD_DNS_TEST: &str = r#"
[[certificate]]
name = "wild"
domains = ["*.dns.test", "dns.test"]
solvers = ["dns"]
"#;

#[test]
fn rfc2136_gets_a_wildcard_from_bind_and_removes_its_records() {
    let env = Env::new();
    let bind = Bind::start(env.dir.path());
    env.pebble.restart_with_dns_server(bind.addr());
    env.write_config(&format!(
        "{}{WILDCARD_DNS_TEST}",
        bind.solver_toml(&bind.key_file)
    ));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}\n--- named\n{}", bind.log());
    assert!(run.stdout.contains("wild: renewed: version 1"), "{run:?}");
    assert_eq!(
        issued_domains(&env, "wild"),
        sorted(&["*.dns.test", "dns.test"])
    );
    verify_chain(&env.pebble.root, &env.store().live_dir("wild")).unwrap();

    // Both values were added beside each other (the wildcard's and the base
    // domain's live at the same name), then each deleted on its own.
    let log = bind.log();
    let added = "adding an RR at '_acme-challenge.dns.test' TXT";
    let deleted = "deleting an RR at _acme-challenge.dns.test TXT";
    assert_eq!(log.matches(added).count(), 2, "{log}");
    assert_eq!(log.matches(deleted).count(), 2, "{log}");
    assert!(!log.contains("deleting rrset"), "{log}");
    assert_eq!(
        txt_values(bind.addr(), "_acme-challenge.dns.test."),
        Vec::<String>::new()
    );
}

#[test]
fn rfc2136_follows_a_cname_from_acme_challenge_to_the_delegated_zone() {
    let env = Env::new();
    let bind = Bind::start(env.dir.path());
    env.pebble.restart_with_dns_server(bind.addr());
    env.write_config(&format!(
        "{}\n[[certificate]]\nname = \"alias\"\ndomains = [\"alias.dns.test\"]\n\
         solvers = [\"dns\"]\n",
        bind.solver_toml(&bind.key_file)
    ));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}\n--- named\n{}", bind.log());
    assert_eq!(issued_domains(&env, "alias"), sorted(&["alias.dns.test"]));
    // Added and removed at the CNAME's target only.
    let log = bind.log();
    let target = "at '_acme-challenge.alias.acme.test' TXT";
    assert_eq!(
        log.matches(&format!("adding an RR {target}")).count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("adding an RR at '_acme-challenge.alias.dns.test'"),
        "{log}"
    );
    assert_eq!(
        txt_values(bind.addr(), "_acme-challenge.alias.acme.test."),
        Vec::<String>::new()
    );
}

#[test]
fn rfc2136_with_a_wrong_tsig_secret_fails_naming_the_server() {
    let env = Env::new();
    let bind = Bind::start(env.dir.path());
    let wrong = env.dir.path().join("wrong.key");
    let secret = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    write_secret(
        &wrong,
        &format!("key \"{KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"),
    );
    env.write_config(&format!("{}{WILDCARD_DNS_TEST}", bind.solver_toml(&wrong)));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    let expected = format!(
        "TSIG key \"{KEY_NAME}\" rejected by {} (NOTAUTH, BADSIG: the secret in {} is not the \
         one the server has",
        bind.addr(),
        wrong.display()
    );
    assert!(run.stdout.contains(&expected), "{run:?}");
    assert!(!env.store().live_dir("wild").exists());
}

// ------------------------------------------------------------- cloudflare

const TOKEN: &str = "cf-test-token";
const ZONE_ID: &str = "zone-example-com";

/// Posts JSON to challtestsrv's management API.
fn challtestsrv(port: u16, path: &str, body: &Value) -> Result<(), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| e.to_string())?;
    if reply.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(reply)
    }
}

/// What the fake saw and holds.
#[derive(Default)]
struct CloudflareState {
    /// (id, name, content) of the TXT records it holds.
    records: Vec<(String, String, String)>,
    next_id: usize,
    /// Every `METHOD path` and whether it carried the right Bearer token.
    requests: Vec<(String, bool)>,
    created: usize,
    deleted: usize,
}

/// Just enough of Cloudflare's v4 API (zones by name, TXT records) over
/// HTTP/1.1, one request per connection; records go to challtestsrv.
struct FakeCloudflare {
    port: u16,
    state: Arc<Mutex<CloudflareState>>,
}

struct HttpRequest {
    method: String,
    target: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Option<HttpRequest> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next()?.to_owned(), words.next()?.to_owned());
    let (mut length, mut authorization) = (0, None);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => authorization = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(HttpRequest {
        method,
        target,
        authorization,
        body,
    })
}

fn query_param<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    target
        .split_once('?')?
        .1
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

impl FakeCloudflare {
    fn start(challtestsrv_mgmt: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake API");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(CloudflareState::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let mut state = shared.lock().unwrap();
                let (status, body) = Self::respond(&mut state, &request, challtestsrv_mgmt);
                let body = body.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { port, state }
    }

    fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/client/v4", self.port)
    }

    fn respond(state: &mut CloudflareState, req: &HttpRequest, mgmt: u16) -> (&'static str, Value) {
        let authorized = req.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"));
        state
            .requests
            .push((format!("{} {}", req.method, req.target), authorized));
        let error = |code: u32, message: &str| {
            json!({"success": false, "result": null,
            "errors": [{"code": code, "message": message}]})
        };
        let ok = |result: Value| json!({"success": true, "errors": [], "result": result});
        if !authorized {
            return ("403 Forbidden", error(9109, "Invalid access token"));
        }
        let path = req.target.strip_prefix("/client/v4").unwrap_or("");
        let records_path = format!("/zones/{ZONE_ID}/dns_records");
        let (route, _) = path.split_once('?').unwrap_or((path, ""));
        match (req.method.as_str(), route) {
            ("GET", "/zones") => match query_param(path, "name") {
                Some("example.com") => (
                    "200 OK",
                    ok(json!([{"id": ZONE_ID, "name": "example.com"}])),
                ),
                _ => ("200 OK", ok(json!([]))),
            },
            ("POST", r) if r == records_path => {
                let record: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                let (name, content) = (
                    record["name"].as_str().unwrap_or("").to_owned(),
                    record["content"].as_str().unwrap_or("").to_owned(),
                );
                if record["type"] != "TXT" || record["ttl"] != 60 || name.is_empty() {
                    return (
                        "400 Bad Request",
                        error(9000, &format!("bad record {record}")),
                    );
                }
                let set = json!({"host": format!("{name}."), "value": content});
                if let Err(e) = challtestsrv(mgmt, "/set-txt", &set) {
                    return ("500 Internal Server Error", error(1000, &e));
                }
                state.next_id += 1;
                state.created += 1;
                let id = format!("record-{}", state.next_id);
                state
                    .records
                    .push((id.clone(), name.clone(), content.clone()));
                (
                    "200 OK",
                    ok(json!({"id": id, "type": "TXT", "name": name, "content": content})),
                )
            }
            ("GET", r) if r == records_path => {
                let found: Vec<Value> = state
                    .records
                    .iter()
                    .filter(|(_, n, c)| {
                        query_param(path, "name") == Some(n)
                            && query_param(path, "content") == Some(c)
                    })
                    .map(|(id, _, _)| json!({"id": id}))
                    .collect();
                ("200 OK", ok(Value::Array(found)))
            }
            ("DELETE", r) if r.starts_with(&format!("{records_path}/")) => {
                let id = r.rsplit('/').next().unwrap_or("");
                let Some(at) = state.records.iter().position(|(i, _, _)| i == id) else {
                    return ("404 Not Found", error(81044, "Record does not exist."));
                };
                let (_, name, _) = state.records.remove(at);
                state.deleted += 1;
                // challtestsrv clears a whole name; put back the values that stay.
                let host = format!("{name}.");
                let mut result = challtestsrv(mgmt, "/clear-txt", &json!({"host": host}));
                for (_, _, content) in state.records.iter().filter(|(_, n, _)| *n == name) {
                    let set = json!({"host": host, "value": content});
                    result = result.and(challtestsrv(mgmt, "/set-txt", &set));
                }
                match result {
                    Ok(()) => ("200 OK", ok(json!({"id": id}))),
                    Err(e) => ("500 Internal Server Error", error(1000, &e)),
                }
            }
            _ => ("404 Not Found", error(7003, "Could not route")),
        }
    }
}

fn cloudflare_config(env: &Env, api: &FakeCloudflare, token: &str) -> String {
    let token_file = env.dir.path().join("cloudflare.token");
    write_secret(&token_file, &format!("{token}\n"));
    format!(
        "[solver.dns]\ntype = \"dns-01\"\nprovider = \"cloudflare\"\napi_token_file = \"{}\"\n\
         api_url = \"{}\"\npropagation_timeout = \"20s\"\nresolvers = [\"127.0.0.1:{}\"]\n\n\
         [[certificate]]\nname = \"cf\"\ndomains = [\"*.cf.example.com\", \"cf.example.com\"]\n\
         solvers = [\"dns\"]\n",
        token_file.display(),
        api.api_url(),
        env.pebble.challtestsrv_dns_port()
    )
}

#[test]
fn cloudflare_gets_a_wildcard_through_the_api_and_deletes_its_records() {
    let env = Env::new();
    let api = FakeCloudflare::start(env.pebble.challtestsrv_mgmt_port());
    env.write_config(&cloudflare_config(&env, &api, TOKEN));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        issued_domains(&env, "cf"),
        sorted(&["*.cf.example.com", "cf.example.com"])
    );
    verify_chain(&env.pebble.root, &env.store().live_dir("cf")).unwrap();

    let state = api.state.lock().unwrap();
    assert!(
        state.requests.iter().all(|(_, authorized)| *authorized),
        "a request without the Bearer token: {:?}",
        state.requests
    );
    // The zone was found by walking up from cf.example.com.
    let asked: Vec<&str> = state.requests.iter().map(|(r, _)| r.as_str()).collect();
    assert!(
        asked.contains(&"GET /client/v4/zones?name=cf.example.com"),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"GET /client/v4/zones?name=example.com"),
        "{asked:?}"
    );
    assert_eq!((state.created, state.deleted), (2, 2), "{asked:?}");
    assert!(state.records.is_empty());
    let dns = SocketAddr::from(([127, 0, 0, 1], env.pebble.challtestsrv_dns_port()));
    assert_eq!(
        txt_values(dns, "_acme-challenge.cf.example.com."),
        Vec::<String>::new()
    );
}

#[test]
fn cloudflare_with_a_rejected_token_fails_naming_the_token_file() {
    let env = Env::new();
    let api = FakeCloudflare::start(env.pebble.challtestsrv_mgmt_port());
    env.write_config(&cloudflare_config(&env, &api, "revoked-token"));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    let token_file = env.dir.path().join("cloudflare.token");
    for expected in [
        "HTTP 403 Forbidden: [9109] Invalid access token".to_owned(),
        format!("check the token in {}", token_file.display()),
    ] {
        assert!(run.stdout.contains(&expected), "{expected}\n{run:?}");
    }
}

// ------------------------------------------------------------------- exec

fn exec_config(env: &Env, hook: &Path) -> String {
    format!(
        "[solver.dns]\ntype = \"dns-01\"\nprovider = \"exec\"\ncommand = [\"{}\"]\n\
         propagation_timeout = \"20s\"\nresolvers = [\"127.0.0.1:{}\"]\n\n\
         [[certificate]]\nname = \"hooked\"\n\
         domains = [\"exec.example.com\", \"*.exec.example.com\"]\nsolvers = [\"dns\"]\n",
        hook.display(),
        env.pebble.challtestsrv_dns_port()
    )
}

#[test]
fn exec_hook_publishes_through_challtestsrv_and_gets_a_certificate() {
    let env = Env::new();
    let calls = env.dir.path().join("hook-calls");
    let hook = env.dir.path().join("dns-hook");
    write_script(
        &hook,
        &format!(
            "#!/bin/sh\nset -eu\necho \"$*\" >> {calls}\nurl=http://127.0.0.1:{port}\n\
             case \"$1\" in\n  \
             set) curl -fsS -X POST -d \"{{\\\"host\\\":\\\"$2\\\",\\\"value\\\":\\\"$3\\\"}}\" $url/set-txt ;;\n  \
             unset) curl -fsS -X POST -d \"{{\\\"host\\\":\\\"$2\\\"}}\" $url/clear-txt ;;\n\
             esac\n",
            calls = calls.display(),
            port = env.pebble.challtestsrv_mgmt_port()
        ),
    );
    env.write_config(&exec_config(&env, &hook));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        issued_domains(&env, "hooked"),
        sorted(&["*.exec.example.com", "exec.example.com"])
    );
    verify_chain(&env.pebble.root, &env.store().live_dir("hooked")).unwrap();

    let calls = std::fs::read_to_string(calls).unwrap();
    let calls: Vec<Vec<&str>> = calls.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    for (i, call) in calls.iter().enumerate() {
        let action = if i < 2 { "set" } else { "unset" };
        assert_eq!(
            call[..2],
            [action, "_acme-challenge.exec.example.com."],
            "{calls:?}"
        );
        assert_eq!(call.len(), 3, "{calls:?}");
    }
    // Two authorizations, two different values; each unset names its own.
    assert_ne!(calls[0][2], calls[1][2]);
    let mut set: Vec<&str> = calls[..2].iter().map(|c| c[2]).collect();
    let mut unset: Vec<&str> = calls[2..].iter().map(|c| c[2]).collect();
    set.sort_unstable();
    unset.sort_unstable();
    assert_eq!(set, unset);
}

#[test]
fn a_failing_exec_hook_is_reported_with_its_stderr() {
    let env = Env::new();
    let hook = env.dir.path().join("dns-hook");
    write_script(
        &hook,
        "#!/bin/sh\necho 'zone exec.example.com is locked by another deploy' >&2\nexit 1\n",
    );
    env.write_config(&exec_config(&env, &hook));

    let run = env.renewd(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    let expected = format!(
        "solver dns: hook {} set _acme-challenge.exec.example.com. ",
        hook.display()
    );
    assert!(run.stdout.contains(&expected), "{run:?}");
    assert!(
        run.stdout
            .contains("failed: exit status: 1: zone exec.example.com is locked by another deploy"),
        "{run:?}"
    );
}
