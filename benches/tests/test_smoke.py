"""Smoke tests of the suite's code: every module of benches/renewd_bench imports
and says what it owns, and `benches/run --help` works and offers every option."""

import importlib
import pkgutil
import subprocess
import sys
import unittest
from pathlib import Path

BENCHES = Path(__file__).resolve().parents[1]
REPO = BENCHES.parent
if str(BENCHES) not in sys.path:
    sys.path.insert(0, str(BENCHES))

import renewd_bench  # noqa: E402

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


if __name__ == "__main__":
    unittest.main()
