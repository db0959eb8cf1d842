"""Smoke tests of the suite's code: every module of benches/renewd_bench imports
and says what it owns, `benches/run --help` works and offers every option, and
the suite uses the repository's own tools (tests/tools) and builds renewd with
the dist profile (the commands checked with subprocess.run replaced)."""

import importlib
import pkgutil
import subprocess
import sys
import tempfile
import types
import unittest
from pathlib import Path
from unittest import mock

BENCHES = Path(__file__).resolve().parents[1]
REPO = BENCHES.parent
if str(BENCHES) not in sys.path:
    sys.path.insert(0, str(BENCHES))

import renewd_bench  # noqa: E402
from renewd_bench import clients, pebble, renewd  # noqa: E402

OPTIONS = ["--quick", "--n", "--tools", "--parts", "--concurrency", "--ceiling-concurrency",
           "--renewd-hi", "--issue-concurrency", "--startup-issue-concurrency",
           "--ceiling-poll-ms", "--ceiling-bin", "--repeat", "--idle-n", "--idle-seconds",
           "--startup-n", "--startup-trials", "--latency-n", "--latency-trials",
           "--latency-concurrency", "--latency-idle", "--python-relay", "--setup-workers",
           "--renewd", "--lego", "--certbot-venv", "--out", "--docs", "--no-docs", "--keep",
           "--note", "--report", "--tmp"]


class Modules(unittest.TestCase):
    def test_every_module_imports_and_opens_with_a_docstring(self):
        names = [m.name for m in pkgutil.iter_modules(renewd_bench.__path__)]
        self.assertGreaterEqual(len(names), 10)
        for name in ["renewd_bench"] + [f"renewd_bench.{n}" for n in names]:
            with self.subTest(module=name):
                module = importlib.import_module(name)
                self.assertGreater(len((module.__doc__ or "").strip()), 40)

    def test_importing_installs_no_signal_handlers(self):
        code = ("import signal, sys; sys.path.insert(0, sys.argv[1]); "
                "import renewd_bench.cli; "
                "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL")
        p = subprocess.run([sys.executable, "-c", code, str(BENCHES)], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)


class Help(unittest.TestCase):
    def test_help_exits_0_and_lists_every_option(self):
        p = subprocess.run([sys.executable, str(BENCHES / "run"), "--help"], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("renewd benchmark suite", p.stdout)
        for option in OPTIONS:
            self.assertIn(option, p.stdout.replace(",", " ").split())

    def test_run_is_executable(self):
        p = subprocess.run([str(BENCHES / "run"), "--help"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_a_bad_option_is_refused(self):
        p = subprocess.run([sys.executable, str(BENCHES / "run"), "--latency-trials", "hot"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--latency-trials: unknown ['hot']", p.stderr)



class ToolsAndBuilds(unittest.TestCase):
    def test_nothing_outside_the_repository(self):
        banned = [".." + "/shared", "RENEWD_" + "TOOLS"]  # split: this file is checked too
        files = [REPO / "docs" / "benchmarks.md"] + [
            f for f in BENCHES.rglob("*") if f.is_file() and "__pycache__" not in f.parts
            and "target" not in f.relative_to(BENCHES).parts]
        for f in files:
            text = f.read_text(errors="replace")
            for word in banned:
                self.assertNotIn(word, text, f)

    def test_pebble_up_and_down_are_tests_tools_pebble(self):
        calls = []

        def run(argv, env=None, **_):
            calls.append((argv, env))
            if argv[1:] == ["up"]:
                Path(env["PEBBLE_STATE_DIR"], "pebble.pid").write_text("4242\n")
            return types.SimpleNamespace(returncode=0, stdout="", stderr="")

        with tempfile.TemporaryDirectory() as tmp, \
                mock.patch.object(pebble.subprocess, "run", run):
            state = Path(tmp) / "pebble-x"
            state.mkdir()
            pb = pebble.Pebble(state)
            try:
                pb.up()
                pb.down()
            finally:
                pebble.CLEANUP.pebbles.remove(pb)
        tool = str(REPO / "tests" / "tools" / "pebble")
        self.assertEqual([argv for argv, _ in calls], [[tool, "up"], [tool, "down"]])
        self.assertEqual(pb.pid, 4242)
        env = calls[0][1]
        for key in ("PEBBLE_PORT", "PEBBLE_MGMT_PORT", "CHALLTESTSRV_DNS_PORT",
                    "CHALLTESTSRV_MGMT_PORT", "PEBBLE_HTTP01_PORT", "PEBBLE_TLSALPN01_PORT"):
            self.assertTrue(env[key].isdigit(), key)
        self.assertEqual(env["PEBBLE_STATE_DIR"], str(state))
        self.assertEqual(pb.ca, state / "certs" / "ca.pem")
        self.assertEqual(calls[1][1], env)

    def test_renewd_is_built_with_the_dist_profile(self):
        calls = []
        with mock.patch.object(renewd.subprocess, "run", lambda argv, **kw: calls.append(
                (argv, kw))), mock.patch.object(renewd, "log"), \
                mock.patch.dict("os.environ", {"CARGO_TARGET_DIR": "/t"}):
            binary = renewd.build_renewd()
        self.assertEqual(calls[0][0], ["cargo", "build", "--profile", "dist", "--locked"])
        self.assertEqual(calls[0][1]["cwd"], REPO)
        self.assertEqual(binary, Path("/t/dist/renewd"))

    def test_the_ceiling_client_is_built_with_release(self):
        calls = []
        args = types.SimpleNamespace(ceiling_bin=None)
        with mock.patch.object(clients.subprocess, "run", lambda argv, **kw: calls.append(
                (argv, kw))), mock.patch.object(clients, "log"), \
                mock.patch.dict("os.environ", {"CARGO_TARGET_DIR": "/t"}):
            binary = clients.build_ceiling(args)
        self.assertEqual(calls[0][0][:3], ["cargo", "build", "--release"])
        self.assertIn(str(BENCHES / "ceiling" / "Cargo.toml"), calls[0][0])
        self.assertEqual(binary, Path("/t/release/acme-ceiling"))


if __name__ == "__main__":
    unittest.main()
