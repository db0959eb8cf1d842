//! Test fixtures: a real Pebble CA per test on ports of its own, a temporary
//! environment with a config, and a builder for running the `renewd` binary.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The repository's test tools, `tests/tools`.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools")
}

/// Ports handed out in this process, so two fixtures never get the same one even
/// though each probe releases its socket before Pebble binds it.
static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A loopback port free for both TCP and UDP right now.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = tcp.local_addr().expect("local addr").port();
        let mut taken = TAKEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !taken.contains(&port) && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
}

/// A running Pebble + challtestsrv, stopped and removed on drop.
pub struct Pebble {
    env: Vec<(String, String)>,
    /// Directory URL.
    pub dir_url: String,
    /// CA certificate for Pebble's own HTTPS listener (`ca.trust`).
    pub listener_ca: PathBuf,
    /// Pebble's issuing root, for verifying issued chains.
    pub root: PathBuf,
    /// Port Pebble's VA dials for http-01.
    pub http01_port: u16,
    /// Port Pebble's VA dials for tls-alpn-01.
    pub tlsalpn01_port: u16,
    /// Management API URL (https, trust `listener_ca`).
    pub mgmt_url: String,
}

impl Pebble {
    /// Starts Pebble issuing 90-day certificates only (`PEBBLE_PROFILES=default`),
    /// so validity is deterministic.
    pub fn start(state_dir: &Path) -> Self {
        Self::start_with(state_dir, &[("PEBBLE_PROFILES", "default")])
    }

    /// Starts Pebble with extra environment (e.g. `PEBBLE_WFE_NONCEREJECT`).
    pub fn start_with(state_dir: &Path, extra: &[(&str, &str)]) -> Self {
        let ports = [
            ("PEBBLE_PORT", free_port()),
            ("PEBBLE_MGMT_PORT", free_port()),
            ("CHALLTESTSRV_DNS_PORT", free_port()),
            ("CHALLTESTSRV_MGMT_PORT", free_port()),
            ("PEBBLE_HTTP01_PORT", free_port()),
            ("PEBBLE_TLSALPN01_PORT", free_port()),
        ];
        let mut env: Vec<(String, String)> = ports
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string()))
            .collect();
        env.push(("PEBBLE_STATE_DIR".into(), state_dir.display().to_string()));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let out = Command::new(tools_dir().join("pebble"))
            .arg("up")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run tests/tools/pebble up");
        assert!(
            out.status.success(),
            "tests/tools/pebble up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The last setting wins, as it does for the child's environment.
        let port = |name: &str| -> u16 {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap()
        };
        Self {
            dir_url: format!("https://127.0.0.1:{}/dir", port("PEBBLE_PORT")),
            listener_ca: state_dir.join("certs/ca.pem"),
            root: state_dir.join("pebble-root.pem"),
            http01_port: port("PEBBLE_HTTP01_PORT"),
            tlsalpn01_port: port("PEBBLE_TLSALPN01_PORT"),
            mgmt_url: format!("https://127.0.0.1:{}", port("PEBBLE_MGMT_PORT")),
            env,
        }
    }

    /// A `tls-alpn-01` standalone solver on the port Pebble's VA dials.
    pub fn tlsalpn01_solver_toml(&self, name: &str) -> String {
        format!(
            "[solver.{name}]\ntype = \"tls-alpn-01\"\nlisten = \"127.0.0.1:{}\"\n",
            self.tlsalpn01_port
        )
    }

    /// Restarts the Pebble process (not challtestsrv) with its JSON config edited
    /// by `edit`; see [`Pebble::restart_with_dns_server`].
    pub fn restart(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let dns = format!("127.0.0.1:{}", self.challtestsrv_dns_port());
        self.respawn(edit, &dns);
    }

    fn var(&self, name: &str) -> String {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    /// Stops Pebble (the CA becomes unreachable).
    pub fn stop(&self) {
        let _ = Command::new(tools_dir().join("pebble"))
            .arg("down")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output();
    }

    /// The `[ca.NAME]` table for this Pebble.
    pub fn ca_toml(&self, name: &str) -> String {
        format!(
            "[ca.{name}]\ndirectory = \"{}\"\ntrust = \"{}\"\ncontact = [\"mailto:ops@example.com\"]\n",
            self.dir_url,
            self.listener_ca.display()
        )
    }

    /// An http-01 standalone solver on the port Pebble's VA dials.
    pub fn http01_solver_toml(&self, name: &str) -> String {
        format!(
            "[solver.{name}]\ntype = \"http-01\"\nlisten = \"127.0.0.1:{}\"\n",
            self.http01_port
        )
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A temporary directory with a config file, a state dir and a Pebble.
pub struct Env {
    /// The CA. Declared first so it is dropped (stopped) while its state, in
    /// `dir`, still names its processes.
    pub pebble: Pebble,
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A new environment with its own Pebble (90-day certificates).
    pub fn new() -> Self {
        Self::with_pebble_env(&[])
    }

    /// A new environment whose Pebble gets `extra` environment.
    pub fn with_pebble_env(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = vec![("PEBBLE_PROFILES", "default")];
        env.extend_from_slice(extra);
        let pebble = Pebble::start_with(&dir.path().join("pebble"), &env);
        Self { dir, pebble }
    }

    /// The state directory renewd uses.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The config file path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("renewd.toml")
    }

    /// Writes a config: `[daemon]` pointing at this env's state dir, a CA `pebble`,
    /// an http-01 solver `web`, then `rest`.
    pub fn write_config(&self, rest: &str) {
        self.write_config_with("", rest);
    }

    /// As [`Env::write_config`], with extra `[daemon]` lines.
    pub fn write_config_with(&self, daemon: &str, rest: &str) {
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\n{daemon}\n\n{}\n{}\n{rest}",
            self.state_dir().display(),
            self.dir.path().join("control.sock").display(),
            self.pebble.ca_toml("pebble"),
            self.pebble.http01_solver_toml("web"),
        );
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Writes a config with only the `[daemon]` table filled in, then `rest`.
    pub fn write_config_raw(&self, rest: &str) {
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\n\n{rest}",
            self.state_dir().display(),
            self.dir.path().join("control.sock").display(),
        );
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Runs `renewd --config <this env's config> args...`.
    pub fn renewd(&self, args: &[&str]) -> Run {
        run_renewd(&self.config_path(), args)
    }

    /// The store, read through the library.
    pub fn store(&self) -> renewd::store::Store {
        renewd::store::Store::open(&self.state_dir()).expect("open store")
    }
}

/// The outcome of one `renewd` invocation.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the `renewd` binary with `--config config`.
pub fn run_renewd(config: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_renewd"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RENEWD_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run renewd");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `openssl verify` of `live/<name>` against `root`.
pub fn verify_chain(root: &Path, live: &Path) -> Result<(), String> {
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(root)
        .arg("-untrusted")
        .arg(live.join("chain.pem"))
        .arg(live.join("cert.pem"))
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Polls `check` every 100 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A `renewd run` process with its log in a file; killed on drop.
pub struct Daemon {
    child: std::process::Child,
    /// Where its stderr goes.
    pub log: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    /// Starts the daemon on `env`'s config and waits until its control socket answers.
    pub fn start(env: &Env) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = env.dir.path().join(format!("daemon-{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_renewd"))
            .arg("--config")
            .arg(env.config_path())
            .arg("run")
            .env("RENEWD_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RENEWD_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create daemon log"))
            .spawn()
            .expect("spawn renewd run");
        let mut daemon = Self {
            child,
            log,
            socket: env.dir.path().join("control.sock"),
        };
        wait_until(
            std::time::Duration::from_secs(30),
            "the control socket",
            || {
                assert!(
                    daemon.is_running(),
                    "daemon exited early:\n{}",
                    daemon.log_text()
                );
                std::os::unix::net::UnixStream::connect(&daemon.socket).is_ok()
            },
        );
        daemon
    }

    /// Sends a signal.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the daemon");
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.child.wait().ok().and_then(|s| s.code())
    }

    /// Everything logged so far.
    /// CPU time (user + system) the daemon has used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap();
        ticks as f64 / hz as f64
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One request on the control socket; every reply line, parsed.
    pub fn control(&self, request: &str) -> Vec<serde_json::Value> {
        use std::io::{BufRead, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket).expect("connect");
        // The daemon may answer and close before reading all of an oversized request.
        let _ = stream.write_all(request.as_bytes());
        let _ = stream.write_all(b"\n");
        std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
            .map(|l| serde_json::from_str(&l).expect("JSON reply"))
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The live version number of every certificate in `names` (0 when missing).
pub fn versions(env: &Env, names: &[String]) -> Vec<u32> {
    let store = env.store();
    names
        .iter()
        .map(|n| store.lineage(n).ok().flatten().map_or(0, |l| l.version))
        .collect()
}

/// `count` certificates named `c0`, `c1`, ... with one domain each.
pub fn many_certificates(count: usize) -> (Vec<String>, String) {
    let names: Vec<String> = (0..count).map(|i| format!("c{i}")).collect();
    let toml = names
        .iter()
        .map(|n| format!("[[certificate]]\nname = \"{n}\"\ndomains = [\"{n}.example.com\"]\n\n"))
        .collect();
    (names, toml)
}

/// A TCP relay in front of a server that can be "unplugged": while closed it
/// accepts and drops every connection. Counts connections either way, so a test
/// can see how often a client tried.
pub struct Relay {
    /// Port to connect to instead of the target's.
    pub port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Relay {
    /// Starts relaying 127.0.0.1:`port` → 127.0.0.1:`target`, initially `open`.
    pub fn start(target: u16, open: bool) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("relay addr").port();
        let open = Arc::new(AtomicBool::new(open));
        let attempts = Arc::new(AtomicUsize::new(0));
        let (is_open, count) = (Arc::clone(&open), Arc::clone(&attempts));
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
                if !is_open.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees a reset connection
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self {
            port,
            open,
            attempts,
        }
    }

    /// Lets connections through (or not).
    pub fn set_open(&self, open: bool) {
        self.open.store(open, std::sync::atomic::Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn attempts(&self) -> usize {
        self.attempts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Pebble {
    /// The Pebble directory port (for a [`Relay`]).
    pub fn port(&self) -> u16 {
        self.dir_url
            .trim_start_matches("https://127.0.0.1:")
            .trim_end_matches("/dir")
            .parse()
            .expect("port in directory URL")
    }
}

/// A real nginx (Debian's package) serving certificates from a renewd store on a
/// loopback port, one `server` per certificate, chosen by SNI.
pub struct Nginx {
    /// The TLS port.
    pub port: u16,
    /// nginx.conf.
    pub conf: PathBuf,
    /// The pid file (for a `signal` reload target).
    pub pid_file: PathBuf,
    prefix: PathBuf,
}

impl Nginx {
    /// Starts nginx under `dir` serving `live/<name>` of `store` for each
    /// `(name, server_name)`.
    pub fn start(dir: &Path, store: &renewd::store::Store, sites: &[(&str, &str)]) -> Self {
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs")).expect("nginx prefix");
        let port = free_port();
        let pid_file = prefix.join("nginx.pid");
        let servers: String = sites
            .iter()
            .map(|(name, server_name)| {
                let live = store.live_dir(name);
                format!(
                    "  server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name {server_name};\n    \
                     ssl_certificate {}/fullchain.pem;\n    ssl_certificate_key {}/privkey.pem;\n    \
                     return 200 \"ok\\n\";\n  }}\n",
                    live.display(),
                    live.display()
                )
            })
            .collect();
        let conf = prefix.join("nginx.conf");
        let text = format!(
            "daemon on;\nuser root;\nworker_processes 1;\npid {};\nerror_log {}/logs/error.log;\n\
             events {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  \
             client_body_temp_path {p}/tmp; proxy_temp_path {p}/tmp; fastcgi_temp_path {p}/tmp;\n  \
             uwsgi_temp_path {p}/tmp; scgi_temp_path {p}/tmp;\n{servers}}}\n",
            pid_file.display(),
            prefix.display(),
            p = prefix.display(),
        );
        std::fs::write(&conf, text).expect("write nginx.conf");
        let nginx = Self {
            port,
            conf,
            pid_file,
            prefix,
        };
        let out = nginx.command(&[]).output().expect("run nginx");
        assert!(
            out.status.success(),
            "nginx failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_until(
            std::time::Duration::from_secs(10),
            "nginx to listen",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        nginx
    }

    /// `nginx -p PREFIX -c CONF -e stderr ARGS...` (also the exec reload hook).
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            "nginx".to_owned(),
            "-p".to_owned(),
            self.prefix.display().to_string(),
            "-c".to_owned(),
            self.conf.display().to_string(),
            "-e".to_owned(),
            "stderr".to_owned(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    fn command(&self, args: &[&str]) -> Command {
        let argv = self.argv(args);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }

    /// `host:port` for a `verify` entry.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.command(&["-s", "stop"]).output();
    }
}

/// TOML for a list of strings.
pub fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// `name` from PATH, else /usr/local/bin (where install-pebble.sh puts it).
pub fn which(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| Path::new("/usr/local/bin").join(name))
}

impl Pebble {
    /// The port of challtestsrv's DNS server (UDP and TCP), where Pebble's VA
    /// looks up names unless [`Pebble::restart_with_dns_server`] moved it.
    pub fn challtestsrv_dns_port(&self) -> u16 {
        self.var("CHALLTESTSRV_DNS_PORT").parse().expect("port")
    }

    /// The port of challtestsrv's management API (`/set-txt`, `/clear-txt`, plain HTTP).
    pub fn challtestsrv_mgmt_port(&self) -> u16 {
        self.var("CHALLTESTSRV_MGMT_PORT").parse().expect("port")
    }

    /// Restarts Pebble (same config, same ports) with its VA resolving names
    /// through `dns_server` instead of challtestsrv. The issuing root changes
    /// on a restart, so the file at [`Pebble::root`] is fetched again.
    pub fn restart_with_dns_server(&self, dns_server: std::net::SocketAddr) {
        self.respawn(|_| {}, &dns_server.to_string());
    }

    /// Stops Pebble, edits its config, and starts it again on the same ports
    /// resolving through `dns_server`; re-fetches the new issuing root.
    fn respawn(&self, edit: impl FnOnce(&mut serde_json::Value), dns_server: &str) {
        use std::os::unix::process::CommandExt as _;
        let state = PathBuf::from(self.var("PEBBLE_STATE_DIR"));
        let pid_file = state.join("pebble.pid");
        let old: i32 = std::fs::read_to_string(&pid_file)
            .expect("pebble.pid")
            .trim()
            .parse()
            .expect("pid");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(old),
            nix::sys::signal::Signal::SIGTERM,
        );
        let config_path = state.join("pebble-config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config_path).expect("pebble config"))
                .expect("pebble config JSON");
        edit(&mut config);
        std::fs::write(&config_path, config.to_string()).expect("write pebble config");
        let mgmt_port: u16 = self.var("PEBBLE_MGMT_PORT").parse().expect("port");
        for port in [self.port(), mgmt_port] {
            wait_until(
                std::time::Duration::from_secs(10),
                "the old Pebble to free its ports",
                || TcpListener::bind(("127.0.0.1", port)).is_ok(),
            );
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(state.join("pebble.log"))
            .expect("pebble.log");
        let mut child = Command::new(which("pebble"))
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(dns_server)
            // pebble-up.sh's defaults, then this Pebble's own environment.
            .envs([
                ("PEBBLE_VA_NOSLEEP", "1"),
                ("PEBBLE_WFE_NONCEREJECT", "0"),
                ("PEBBLE_AUTHZREUSE", "0"),
            ])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start pebble");
        std::fs::write(&pid_file, child.id().to_string()).expect("write pebble.pid");
        // Reaped here once pebble-down.sh stops it.
        std::thread::spawn(move || child.wait());
        wait_until(
            std::time::Duration::from_secs(10),
            "the restarted Pebble's issuing root",
            || {
                Command::new("curl")
                    .args(["-fsS", "--cacert"])
                    .arg(&self.listener_ca)
                    .arg("-o")
                    .arg(&self.root)
                    .arg(format!("{}/roots/0", self.mgmt_url))
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
        );
        wait_until(
            std::time::Duration::from_secs(10),
            "the restarted Pebble's directory",
            || std::net::TcpStream::connect(("127.0.0.1", self.port())).is_ok(),
        );
    }
}
