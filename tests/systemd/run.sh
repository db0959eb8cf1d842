#!/usr/bin/env bash
# shellcheck disable=SC2016  # single-quoted scripts are expanded inside the container
# End-to-end test of the renewd packages under a real systemd (PID 1 in a
# systemd-nspawn container, see tests/tools/systemd-sandbox):
#
#   tests/systemd/run.sh          # as root; about a minute once the base image
#                                 # and the release build exist
#
# It builds the .deb and .rpm with scripts/package, starts a Pebble ACME CA on
# the host's loopback (the container shares the host network), installs the
# .deb in a pristine container and checks what an operator relies on: the unit
# starts and reports status, certificates are issued, SIGUSR1 renews all,
# `systemctl reload` applies a new config and refuses a broken one, the
# journal carries structured fields, the watchdog is fed, the exposure score
# has not regressed, nginx is reloaded (D-Bus, pid-file signal) and serves the
# new certificate, a webroot works with the documented drop-in, an upgrade
# try-restarts, a removal keeps the certificates and a purge leaves nothing
# behind. The .rpm is inspected with rpm(8).
#
# Prints one PASS/FAIL/SKIP line per check and ends with "N passed, M failed";
# exits 1 if any check failed. The container and Pebble are always stopped.
#
# Environment: RENEWD_SBX_DIR (default /var/tmp/renewd-sandbox: cached base image),
# SBX_INSTANCE (default renewd-it), SBX_KEEP=1 (keep the container's files
# for a post-mortem), CARGO_TARGET_DIR (as for cargo).
set -uo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
sandbox="$repo/tests/tools/systemd-sandbox"
pebble="$repo/tests/tools/pebble"
export SBX_DIR="${RENEWD_SBX_DIR:-/var/tmp/renewd-sandbox}"
export SBX_INSTANCE="${SBX_INSTANCE:-renewd-it}"

# The exposure `systemd-analyze security renewd.service` reported when the unit
# was last hardened (docs/systemd.md). A higher figure is a regression.
max_exposure=2.0

# Pebble on ports of its own, so it does not collide with tests/it or the demo.
export PEBBLE_PORT=14400 PEBBLE_MGMT_PORT=15400 CHALLTESTSRV_DNS_PORT=8453 \
  CHALLTESTSRV_MGMT_PORT=8455 PEBBLE_HTTP01_PORT=5402 PEBBLE_TLSALPN01_PORT=5401 \
  PEBBLE_PROFILES=default PEBBLE_STATE_DIR=/tmp/renewd-sbx-pebble
nginx_port=5443     # nginx in the container serves web.example.com here (TLS)

passed=0 failed=0 skipped=0 started=$SECONDS
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1${2:+ ($2)}"; failed=$((failed + 1)); }
skip() { echo "SKIP: $1${2:+ ($2)}"; skipped=$((skipped + 1)); }
log() { echo "== $*" >&2; }
# abort DESCRIPTION: a step the remaining checks depend on failed.
abort() { fail "$1"; echo "$passed passed, $failed failed"; exit 1; }

# in_ct SCRIPT: run a bash script inside the container (as root, not in a unit).
in_ct() { "$sandbox" run "$SBX_DIR" -- bash -c "$1"; }
# eventually SECONDS SCRIPT: retry SCRIPT in the container until it succeeds.
eventually() {
  in_ct "for i in \$(seq $(($1 * 5))); do ($2) >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1"
}

# reload_renewd: systemctl reload, then wait until the daemon has applied it
# (ExecReload only sends SIGHUP; renewd logs RENEWD_EVENT=config-reloaded).
reloaded='journalctl -u renewd -o json --no-pager | grep -c "\"RENEWD_EVENT\":\"config-reloaded\"" || true'
reload_renewd() {
  local n; n=$(in_ct "$reloaded")
  in_ct 'systemctl reload renewd' && eventually 10 "test \"\$($reloaded)\" -gt $n"
}

if [ "$(id -u)" != 0 ]; then
  echo "tests/systemd/run.sh: needs root (systemd-nspawn)" >&2
  exit 2
fi

cleanup() {
  local rc=$?
  "$sandbox" stop "$SBX_DIR" >/dev/null 2>&1 || true
  "$pebble" down --purge >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build ----------------------------------------------------------------------
log "scripts/package"
deb="" rpm=""
# The test build (cargo test built it already); RENEWD_PACKAGE_PROFILE=dist tests what ships.
if out=$("$repo/scripts/package" --profile "${RENEWD_PACKAGE_PROFILE:-dev}" 2>/tmp/renewd-sbx-package.log); then
  deb=$(printf '%s\n' "$out" | grep '\.deb$' | tail -n1)
  rpm=$(printf '%s\n' "$out" | grep '\.rpm$' | tail -n1)
fi
build_s=$((SECONDS - started))
if [ -f "$deb" ] && [ -f "$rpm" ]; then
  pass "scripts/package builds $(basename "$deb") and $(basename "$rpm")"
else
  tail -n 30 /tmp/renewd-sbx-package.log
  abort "scripts/package builds the .deb and the .rpm (log: /tmp/renewd-sbx-package.log)"
fi

# --- the .rpm (inspected on the host) --------------------------------------------
command -v rpm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q rpm >/dev/null
rpm_files=$(rpm -qlp "$rpm" 2>/dev/null)
want_files="/etc/renewd/renewd.toml /usr/bin/renewd /usr/lib/systemd/system/renewd.service
/usr/share/man/man8/renewd.8.gz /usr/share/man/man5/renewd.toml.5.gz
/usr/share/bash-completion/completions/renewd /usr/share/zsh/site-functions/_renewd
/usr/share/fish/vendor_completions.d/renewd.fish"
missing=""
for f in $want_files; do grep -qx "$f" <<<"$rpm_files" || missing="$missing $f"; done
if [ -z "$missing" ] && [ "$(rpm -qpc "$rpm" 2>/dev/null)" = /etc/renewd/renewd.toml ]; then
  pass "rpm -qlp lists binary, unit, config (%config), man pages, completions"
else
  fail "rpm -qlp lists binary, unit, config (%config), man pages, completions" "missing:${missing:- none; config wrong}"
fi
scripts=$(rpm -qp --scripts "$rpm" 2>/dev/null)
if grep -q 'postinstall scriptlet' <<<"$scripts" && grep -q 'systemctl --no-reload preset renewd.service' <<<"$scripts" &&
   grep -q 'systemctl --no-reload disable --now renewd.service' <<<"$scripts" &&
   grep -q 'systemctl try-restart renewd.service' <<<"$scripts"; then
  pass "rpm -qp --scripts: preset on install, disable --now on erase, try-restart on upgrade"
else
  fail "rpm -qp --scripts: preset on install, disable --now on erase, try-restart on upgrade"
fi

# --- the ecosystems' checkers (docs/packaging.md) ------------------------------------
lintian_out=$(lintian "$deb" 2>&1 | grep -v 'running with root privileges' || true)
if [ -z "$lintian_out" ]; then
  pass "lintian: no errors, no warnings"
else
  fail "lintian: no errors, no warnings" "$lintian_out"
fi
# Every rpmlint finding must be one docs/packaging.md explains.
explained='no-signature|no-packager-tag|no-group-tag|no-changelogname-tag|no-buildhost-tag|only-non-binary-in-usr-lib|no-manual-page-for-binary|manpage-not-compressed|invalid-license'
unexplained=$(rpmlint "$rpm" 2>&1 | grep -E '^renewd[.]' | grep -Ev ": [EW]: ($explained)( |$)" || true)
if [ -z "$unexplained" ]; then
  pass "rpmlint: every finding explained in docs/packaging.md"
else
  fail "rpmlint: every finding explained in docs/packaging.md" "$unexplained"
fi

# --- CA and container --------------------------------------------------------------
log "Pebble on 127.0.0.1:$PEBBLE_PORT"
"$pebble" down --purge >/dev/null 2>&1 || true
"$pebble" up >/tmp/renewd-sbx-pebble.log 2>&1 ||
  { cat /tmp/renewd-sbx-pebble.log; abort "Pebble starts (tests/tools/pebble up)"; }
# shellcheck disable=SC1091
. "$PEBBLE_STATE_DIR/env.sh"

log "container ($SBX_DIR, instance $SBX_INSTANCE)"
SBX_PACKAGES=nginx-light,openssl,rpm "$sandbox" create "$SBX_DIR" >&2 || abort "base image (systemd-sandbox create)"
"$sandbox" stop "$SBX_DIR" >/dev/null 2>&1 || true
"$sandbox" start "$SBX_DIR" >&2 || abort "container boots systemd (systemd-sandbox start)"
# The cached image may come from a bare `create`: add what the checks use.
in_ct 'command -v nginx && command -v openssl' >/dev/null ||
  in_ct 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light openssl' >/dev/null
# A debootstrapped root has no /etc/hosts; a real host has this one. The CA URL
# below uses "localhost", so renewd resolves a name from inside its sandbox.
in_ct 'printf "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n" >/etc/hosts'
# nginx serves only the test's site (the image's default one listens on :80).
in_ct 'systemctl stop nginx; rm -f /etc/nginx/sites-enabled/default'
# Everything on disk before renewd is installed, to compare after the purge.
snapshot='find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
  -o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg \
  -o -path /etc/nginx -o -path /var/lib/nginx -o -path /root/renewd-test -o -path /etc/ld.so.cache \) -prune -o -print | sort'
in_ct "$snapshot" >/tmp/renewd-sbx-before.txt

# --- install -------------------------------------------------------------------
log "apt-get install ./$(basename "$deb")"
if "$sandbox" install-deb "$SBX_DIR" "$deb" >/tmp/renewd-sbx-apt.log 2>&1 &&
   in_ct 'systemctl is-enabled --quiet renewd && systemctl is-active --quiet renewd &&
          systemctl show -P StatusText renewd | grep -qx "0 certificates"'; then
  pass "apt-get install: unit enabled and running the shipped config (StatusText \"0 certificates\")"
else
  cat /tmp/renewd-sbx-apt.log
  fail "apt-get install: unit enabled and running the shipped config"
fi

# --- operator path: configure, enable --now ---------------------------------------
"$sandbox" copy-in "$SBX_DIR" "$PEBBLE_CA" /etc/renewd/pebble-ca.pem
cert() { # cert NAME DOMAINS [TOML lines...]: one [[certificate]] entry
  local name=$1 domains=$2; shift 2
  printf '\n[[certificate]]\nname = "%s"\ndomains = [%s]\n' "$name" "$domains"
  [ $# -eq 0 ] || printf '%s\n' "$@"
}
write_config() { # write_config CERTIFICATES: /etc/renewd/renewd.toml with Pebble + http-01
  cat >/tmp/renewd-sbx.toml <<TOML
[ca.pebble]
directory = "https://localhost:$PEBBLE_PORT/dir"
trust = "/etc/renewd/pebble-ca.pem"

[solver.web]
type = "http-01"
listen = "127.0.0.1:$PEBBLE_HTTP01_PORT"
$1
TOML
  "$sandbox" copy-in "$SBX_DIR" /tmp/renewd-sbx.toml /etc/renewd/renewd.toml
}
cert_a=$(cert a.example.com '"a.example.com"')
cert_b=$(cert b.example.com '"b.example.com", "www.b.example.com"' 'key = "ecdsa-p384"')
cert_web=$(cert web.example.com '"web.example.com"' 'key = "rsa2048"')
cert_web_reload=$(cert web.example.com '"web.example.com"' 'key = "rsa2048"' \
  'reload = [{ unit = "nginx.service" }]' "verify = [\"127.0.0.1:$nginx_port\"]")
cert_web_signal=$(cert web.example.com '"web.example.com"' 'key = "rsa2048"' \
  'reload = [{ signal = "HUP", pid_file = "/run/nginx.pid" }]' "verify = [\"127.0.0.1:$nginx_port\"]")
cert_d=$(cert d.example.com '"d.example.com"')

in_ct 'systemctl stop renewd'
write_config "$cert_a$cert_b$cert_web"
if in_ct 'systemctl enable --now renewd && systemctl is-active --quiet renewd'; then
  status_text=$(in_ct 'systemctl show -P StatusText renewd')
  if [[ $status_text =~ ^3\ certificates,\ next:\ [a-z.]+\ (in\ |now) ]]; then
    pass "systemctl enable --now renewd: active, StatusText \"$status_text\""
  else
    fail "systemctl enable --now renewd: StatusText from renewd" "got \"$status_text\""
  fi
else
  fail "systemctl enable --now renewd reaches active"
fi

# --- issuance ---------------------------------------------------------------------
issued='renewd status --json >/dev/null &&
  for n in a.example.com b.example.com web.example.com; do
    test -f /var/lib/renewd/live/$n/fullchain.pem && test -f /var/lib/renewd/live/$n/privkey.pem || exit 1
  done'
if eventually 30 "$issued" &&
   in_ct 'renewd status --json | grep -c "\"healthy\": true" | grep -qx 3 &&
          test "$(stat -c %a /var/lib/renewd)" = 700 &&
          test "$(stat -Lc %a /var/lib/renewd/live/a.example.com/privkey.pem)" = 600'; then
  pass "certificates issued: renewd status --json exits 0, 3 healthy, live/*/{fullchain,privkey}.pem (state 0700, key 0600)"
else
  in_ct 'renewd status' || true
  fail "certificates issued (renewd status --json exit 0, files under /var/lib/renewd/live/)"
fi

# --- SIGUSR1: renew everything ---------------------------------------------------------
at_version() { # at_version N NAME...: every live/NAME points at archive/NAME/N
  local n=$1 s="" c; shift
  for c in "$@"; do s="$s test \"\$(readlink /var/lib/renewd/live/$c)\" = ../archive/$c/$n &&"; done
  echo "$s true"
}
in_ct 'systemctl kill -s USR1 renewd'
if eventually 30 "$(at_version 2 a.example.com b.example.com web.example.com)" &&
   in_ct 'systemctl is-active --quiet renewd'; then
  pass "systemctl kill -s USR1 renewd: all 3 renewed (live/* -> archive/*/2)"
else
  in_ct 'ls -l /var/lib/renewd/live/'
  fail "systemctl kill -s USR1 renewd renews all"
fi

# --- journald fields -------------------------------------------------------------------
if in_ct 'journalctl -u renewd -o json --no-pager | grep "\"RENEWD_EVENT\":\"renewed\"" |
          grep -q "\"CERT_NAME\":\"b.example.com\""'; then
  pass "journalctl -u renewd -o json: CERT_NAME=b.example.com with RENEWD_EVENT=renewed"
else
  fail "journalctl -u renewd -o json has CERT_NAME and RENEWD_EVENT fields"
fi

# --- the plain command operators type, with a hook in flight ----------------------------
# `systemctl kill -s USR1 renewd` signals every process of the unit: a reload hook
# running at that moment must survive it and finish.
cert_hook=$(cert hook.example.com '"hook.example.com"' \
  'reload = [{ exec = ["sh", "-c", "sleep 5; echo done >> /var/lib/renewd/hook-runs"] }]')
write_config "$cert_a$cert_b$cert_web$cert_hook"
if reload_renewd && eventually 30 'pgrep -f "sleep 5" >/dev/null' &&
   in_ct 'systemctl kill -s USR1 renewd' &&
   eventually 30 'grep -q done /var/lib/renewd/hook-runs' &&
   eventually 30 "$(at_version 3 a.example.com b.example.com web.example.com)" &&
   in_ct 'systemctl is-active --quiet renewd'; then
  pass "systemctl kill -s USR1 renewd (every process) with a reload hook in flight: the hook finishes, all renewed"
else
  in_ct 'journalctl -u renewd --no-pager | tail -n 20' || true
  fail "systemctl kill -s USR1 renewd: a reload hook in flight survives and everything is renewed"
fi

# --- systemctl reload: a new certificate -----------------------------------------------
pid=$(in_ct 'systemctl show -P MainPID renewd')
write_config "$cert_a$cert_b$cert_web$cert_d"
if reload_renewd &&
   eventually 30 'test -f /var/lib/renewd/live/d.example.com/fullchain.pem && renewd status --json d.example.com' &&
   in_ct "systemctl is-active --quiet renewd && test \"\$(systemctl show -P MainPID renewd)\" = $pid &&
          systemctl show -P StatusText renewd | grep -q '^4 certificates'"; then
  pass "systemctl reload renewd: added d.example.com issued, same main PID, StatusText \"4 certificates, ...\""
else
  fail "systemctl reload renewd re-reads the config and issues the added certificate"
fi

# --- a broken edit ------------------------------------------------------------------------
in_ct 'mkdir -p /root/renewd-test && cp /etc/renewd/renewd.toml /root/renewd-test/good.toml &&
       printf "\n[daemon]\nmax_concurent = 4\n" >>/etc/renewd/renewd.toml'
cc=$(in_ct 'renewd check-config >/dev/null 2>&1; echo $?')
if [ "$cc" = 2 ] && ! in_ct 'systemctl reload renewd 2>/dev/null' &&
   in_ct "systemctl is-active --quiet renewd && test \"\$(systemctl show -P MainPID renewd)\" = $pid &&
          renewd status --json 2>/dev/null | grep -c '\"name\"' | grep -qx 4"; then
  pass "broken config: check-config exits 2, systemctl reload fails, daemon keeps running the old config"
else
  fail "broken config: check-config exits 2 and the daemon keeps the old config" "check-config exit $cc"
fi
# SIGHUP straight to the daemon (bypassing ExecReload's check): renewd keeps the old config.
in_ct 'systemctl kill -s HUP --kill-whom=main renewd'
if eventually 10 'journalctl -u renewd -o json --no-pager | grep -q "\"RENEWD_EVENT\":\"config-invalid\""' &&
   in_ct "systemctl is-active --quiet renewd && test \"\$(systemctl show -P MainPID renewd)\" = $pid &&
          systemctl show -P StatusText renewd | grep -q '^4 certificates'"; then
  pass "SIGHUP with a broken config: RENEWD_EVENT=config-invalid logged, old config keeps running"
else
  fail "SIGHUP with a broken config is logged and the old config keeps running"
fi
# Starting with a broken config fails once, with exit status 2, and is not retried.
if ! in_ct 'systemctl restart renewd 2>/dev/null' &&
   in_ct 'test "$(systemctl show -P ActiveState renewd)" = failed &&
          test "$(systemctl show -P ExecMainStatus renewd)" = 2 &&
          test "$(systemctl show -P NRestarts renewd)" = 0'; then
  pass "start with a broken config: failed, exit status 2, no restart loop (RestartPreventExitStatus=2)"
else
  in_ct 'systemctl status renewd --no-pager' || true
  fail "start with a broken config fails without a restart loop"
fi
in_ct 'cp /root/renewd-test/good.toml /etc/renewd/renewd.toml && systemctl start renewd'

# --- watchdog ---------------------------------------------------------------------------
# A 2 s watchdog for this test only: renewd must ping it (the unit ships 60 s).
in_ct 'mkdir -p /run/systemd/system/renewd.service.d &&
       printf "[Service]\nWatchdogSec=2s\n" >/run/systemd/system/renewd.service.d/watchdog.conf &&
       systemctl daemon-reload && systemctl restart renewd'
pid=$(in_ct 'systemctl show -P MainPID renewd')
sleep 5
if in_ct "systemctl is-active --quiet renewd && test \"\$(systemctl show -P MainPID renewd)\" = $pid &&
          test \"\$(systemctl show -P NRestarts renewd)\" = 0" &&
   ! in_ct 'journalctl -u renewd --no-pager | grep -q "Watchdog timeout"'; then
  pass "watchdog: with WatchdogSec=2s renewd stays up for 5 s (WATCHDOG=1 pings)"
else
  fail "watchdog: renewd pings WATCHDOG=1"
fi
in_ct 'rm -rf /run/systemd/system/renewd.service.d && systemctl daemon-reload && systemctl restart renewd'

# --- exposure ---------------------------------------------------------------------------
exposure=$(in_ct 'systemd-analyze security --no-pager renewd.service' | sed -n 's/.*Overall exposure level for renewd.service: \([0-9.]*\).*/\1/p')
if [ -n "$exposure" ] && awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
  pass "systemd-analyze security renewd.service: exposure $exposure (limit $max_exposure)"
else
  fail "systemd-analyze security renewd.service: exposure ${exposure:-?} > $max_exposure"
fi

# --- no core dumps ----------------------------------------------------------------------
# The daemon holds private keys and other secrets: LimitCORE=0, and its own
# prctl(PR_SET_DUMPABLE, 0) passes the unit's system call filter.
pid=$(in_ct 'systemctl show -P MainPID renewd')
if in_ct "grep -Eq '^Max core file size +0 +0 ' /proc/$pid/limits" &&
   ! in_ct 'journalctl -u renewd --no-pager | grep -q "cannot turn core dumps off"'; then
  pass "no core dumps: LimitCORE=0 and prctl(PR_SET_DUMPABLE, 0) allowed"
else
  fail "no core dumps: LimitCORE=0 and prctl(PR_SET_DUMPABLE, 0) allowed"
fi

# --- nginx: reload over D-Bus, then verify ----------------------------------------------
# Bootstrap as an operator would: nginx serves the issued certificate first,
# then the certificate gets reload + verify and is force-renewed.
in_ct "cat >/etc/nginx/conf.d/renewd-test.conf <<NGINX
server {
    listen 127.0.0.1:$nginx_port ssl;
    server_name web.example.com;
    ssl_certificate /var/lib/renewd/live/web.example.com/fullchain.pem;
    ssl_certificate_key /var/lib/renewd/live/web.example.com/privkey.pem;
    return 200 \"ok\\n\";
}
NGINX
systemctl restart nginx"
served_serial="openssl s_client -connect 127.0.0.1:$nginx_port -servername web.example.com </dev/null 2>/dev/null |
  openssl x509 -noout -serial"
live_serial='openssl x509 -noout -serial -in /var/lib/renewd/live/web.example.com/cert.pem'
nginx_reloads='journalctl -u nginx --no-pager -o cat | grep -c "^Reloaded" || true'
# renew_web: force-renew web.example.com, wait until nginx serves the new live cert.
renew_web() {
  in_ct 'renewd renew --force web.example.com' >/tmp/renewd-sbx-renew.log 2>&1
  eventually 10 "test \"\$($served_serial)\" = \"\$($live_serial)\""
}
write_config "$cert_a$cert_b$cert_web_reload$cert_d"
desc="nginx: renewd renew --force web.example.com reloads nginx.service over D-Bus, nginx serves the new serial, verify matches"
if ! in_ct "$served_serial" | grep -q .; then
  fail "$desc" "nginx does not serve the bootstrap certificate"
elif ! in_ct 'renewd check-config' >/tmp/renewd-sbx-cc.log 2>&1; then
  if grep -q 'reload' /tmp/renewd-sbx-cc.log; then
    skip "$desc" "check-config rejects the reload key: $(head -n1 /tmp/renewd-sbx-cc.log)"
  else
    fail "$desc" "check-config: $(head -n3 /tmp/renewd-sbx-cc.log | tr '\n' ' ')"
  fi
else
  before=$(in_ct "$nginx_reloads") old=$(in_ct "$live_serial")
  reload_renewd
  renew_web
  after=$(in_ct "$nginx_reloads") served=$(in_ct "$served_serial") live=$(in_ct "$live_serial")
  if [ "$after" = "$before" ]; then
    skip "$desc" "no reload of nginx.service happened: $(tr '\n' ' ' </tmp/renewd-sbx-renew.log)"
  elif [ "$served" != "$live" ] || [ "$live" = "$old" ]; then
    fail "$desc" "nginx reloaded, but serves $served; live $live, before $old"
  elif ! eventually 10 'renewd status --json web.example.com | grep -E "\"matches\": ?true" >/dev/null'; then
    fail "$desc" "nginx serves $live, but renewd status has no served match"
  else
    pass "$desc ($live)"
  fi

  # pid_file reload: nginx's master runs as root, so no CAP_KILL is needed.
  desc="pid_file reload: SIGHUP to nginx's root-owned master (unit without CAP_KILL), nginx serves the new serial"
  write_config "$cert_a$cert_b$cert_web_signal$cert_d"
  old=$(in_ct "$live_serial")
  if reload_renewd && renew_web && [ "$(in_ct "$live_serial")" != "$old" ]; then
    pass "$desc ($(in_ct "$live_serial"))"
  else
    fail "$desc" "$(tr '\n' ' ' </tmp/renewd-sbx-renew.log)"
  fi
fi
in_ct 'rm -f /etc/nginx/conf.d/renewd-test.conf'

# --- webroot outside the state dir: ReadWritePaths drop-in (docs/systemd.md) ----------
# nginx serves /var/www/html where Pebble's validator connects; renewd's
# standalone listener is idle meanwhile (nothing else is due).
in_ct "cat >/etc/nginx/conf.d/renewd-webroot.conf <<NGINX
server {
    listen 127.0.0.1:$PEBBLE_HTTP01_PORT;
    root /var/www/html;
}
NGINX
systemctl restart nginx"
webroot_cert=$(cert www.example.com '"www.example.com"' 'solvers = ["webroot"]')
write_config "$cert_a$cert_b$cert_web$cert_d$webroot_cert
[solver.webroot]
type = \"http-01\"
webroot = \"/var/www/html\""
desc="webroot = /var/www/html: read-only for the unit as shipped, writable with the ReadWritePaths drop-in"
reload_renewd
in_ct 'renewd renew --force www.example.com' >/tmp/renewd-sbx-webroot.log 2>&1
if grep -qi 'read-only file system' /tmp/renewd-sbx-webroot.log &&
   in_ct 'mkdir -p /etc/systemd/system/renewd.service.d &&
          printf "[Service]\nReadWritePaths=/var/www/html\n" >/etc/systemd/system/renewd.service.d/webroot.conf &&
          systemctl daemon-reload && systemctl restart renewd'; then
  in_ct 'renewd renew --force www.example.com' >/tmp/renewd-sbx-webroot2.log 2>&1
  if ! grep -qi 'read-only file system' /tmp/renewd-sbx-webroot2.log &&
     in_ct 'test -d /var/www/html/.well-known/acme-challenge'; then
    pass "$desc"
  else
    fail "$desc" "$(tr '\n' ' ' </tmp/renewd-sbx-webroot2.log)"
  fi
  # A first certificate for a site without .well-known yet: the web server
  # (www-data) must be able to read the challenge renewd wrote under UMask=0077.
  desc="webroot: first issuance into a fresh webroot (web server can read .well-known/acme-challenge/)"
  if in_ct 'test -f /var/lib/renewd/live/www.example.com/fullchain.pem'; then
    pass "$desc"
  else
    fail "$desc" "$(tr '\n' ' ' </tmp/renewd-sbx-webroot2.log) modes: $(in_ct 'stat -c "%a %n" /var/www/html/.well-known /var/www/html/.well-known/acme-challenge' | tr '\n' ' ')"
  fi
else
  fail "$desc" "$(tr '\n' ' ' </tmp/renewd-sbx-webroot.log)"
fi
in_ct 'rm -rf /etc/systemd/system/renewd.service.d /var/www/html/.well-known /etc/nginx/conf.d/renewd-webroot.conf
       systemctl daemon-reload'
in_ct 'systemctl stop nginx'

# --- upgrade, remove, purge ----------------------------------------------------------------
reinstall="DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -q /var/tmp/sbx-debs/$(basename "$deb") >/dev/null 2>&1"
in_ct 'systemctl is-active --quiet renewd || systemctl start renewd'
pid=$(in_ct 'systemctl show -P MainPID renewd')
if in_ct "$reinstall && systemctl is-active --quiet renewd && test \"\$(systemctl show -P MainPID renewd)\" != $pid &&
          grep -q d.example.com /etc/renewd/renewd.toml && systemctl stop renewd && $reinstall &&
          ! systemctl is-active --quiet renewd && systemctl is-enabled --quiet renewd"; then
  pass "upgrade (apt-get install --reinstall): running daemon restarted, stopped one stays stopped, edited config kept"
else
  fail "upgrade: try-restart and the edited config kept"
fi
in_ct 'systemctl start renewd'
if in_ct 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q renewd >/dev/null 2>&1 &&
          ! systemctl is-active --quiet renewd && ! test -e /usr/bin/renewd &&
          test -f /etc/renewd/renewd.toml && test -f /var/lib/renewd/live/a.example.com/privkey.pem'; then
  pass "apt-get remove renewd: daemon stopped, config and certificates kept"
else
  fail "apt-get remove renewd: daemon stopped, config and certificates kept"
fi
in_ct 'rm -rf /root/renewd-test'
in_ct 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -q renewd' >/tmp/renewd-sbx-purge.log 2>&1
in_ct "$snapshot" >/tmp/renewd-sbx-after.txt
left=$(comm -13 /tmp/renewd-sbx-before.txt /tmp/renewd-sbx-after.txt)
if [ -z "$left" ] && in_ct '! test -e /etc/renewd && ! test -e /var/lib/renewd && ! test -e /lib/systemd/system/renewd.service &&
                       ! systemctl is-active --quiet renewd'; then
  pass "apt-get purge renewd: daemon stopped, /etc/renewd, /var/lib/renewd, the unit and its links gone, nothing else left"
else
  cat /tmp/renewd-sbx-purge.log
  fail "apt-get purge renewd leaves no files behind" "left: $(tr '\n' ' ' <<<"$left")"
fi

# --- the .rpm, installed for real once the .deb is purged ---------------------------------
# Debian's rpm installs it into the container (--nodeps: its requirements are
# Debian packages here); the scriptlets run under the same systemd.
"$sandbox" copy-in "$SBX_DIR" "$rpm" /var/tmp/renewd.rpm
rpm_cmd='rpm --nodeps --force-debian'
# A preset that enables renewd, as a distribution's or an admin's would: %post
# applies it on a first install (and only then).
in_ct 'mkdir -p /etc/systemd/system-preset && echo "enable renewd.service" >/etc/systemd/system-preset/50-renewd-test.preset'
if in_ct 'command -v rpm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rpm >/dev/null 2>&1' &&
   in_ct "$rpm_cmd -i /var/tmp/renewd.rpm >/dev/null 2>&1" &&
   in_ct 'test -x /usr/bin/renewd && test -f /usr/lib/systemd/system/renewd.service &&
          systemctl cat renewd.service >/dev/null && renewd check-config >/dev/null &&
          ! systemctl is-active --quiet renewd && test "$(systemctl is-enabled renewd)" = enabled'; then
  pass "rpm -i: binary, unit known to systemd (daemon-reload by %post), preset applied (enabled by the preset file), shipped config valid, not started"
else
  in_ct 'systemctl is-enabled renewd' || true
  fail "rpm -i installs renewd, applies the preset and systemd knows its unit"
fi
in_ct 'rm -f /etc/systemd/system-preset/50-renewd-test.preset'
# The purge took /etc/renewd with it: the Pebble CA again, then a config.
"$sandbox" copy-in "$SBX_DIR" "$PEBBLE_CA" /etc/renewd/pebble-ca.pem
write_config "$cert_a"
if in_ct 'systemctl enable --now renewd' && eventually 30 "$(at_version 1 a.example.com)" &&
   in_ct 'renewd status >/dev/null'; then
  pass "rpm: systemctl enable --now renewd issues the certificate, renewd status healthy"
else
  fail "rpm: the installed daemon runs and issues"
fi
pid=$(in_ct 'systemctl show -P MainPID renewd')
if in_ct "$rpm_cmd -U --replacepkgs /var/tmp/renewd.rpm >/dev/null 2>&1 &&
          systemctl is-active --quiet renewd && test \"\$(systemctl show -P MainPID renewd)\" != $pid &&
          grep -q a.example.com /etc/renewd/renewd.toml"; then
  pass "rpm -U: running daemon restarted (%postun try-restart), edited config kept (%config(noreplace))"
else
  fail "rpm -U restarts the daemon and keeps the edited config"
fi
if in_ct "$rpm_cmd -e renewd >/dev/null 2>&1 && ! systemctl is-active --quiet renewd &&
          ! systemctl is-enabled --quiet renewd 2>/dev/null && ! test -e /usr/bin/renewd &&
          test -f /var/lib/renewd/live/a.example.com/privkey.pem"; then
  pass "rpm -e: daemon stopped and disabled (%preun), binary gone, certificates kept"
else
  fail "rpm -e stops and disables the daemon and keeps the certificates"
fi

if [ "$failed" -gt 0 ]; then
  echo "--- journal of renewd.service (last 40 lines)"
  in_ct 'journalctl -u renewd --no-pager -n 40' 2>/dev/null || true
fi
echo "tests/systemd/run.sh: $((SECONDS - started)) s (scripts/package: $build_s s)"
[ "$skipped" -gt 0 ] && echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
