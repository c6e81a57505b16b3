"""Notifiers in real jobs: experiments and groups (on the session's local Ray) report to real
HTTP and SMTP servers on 127.0.0.1 through Apprise; a dead endpoint costs a bounded time; no
credential reaches the knowledge center. A job file's ``notify:`` URLs, through the CLI."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import all_runs, client, write

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

NOTIFIERS = "ml_experiment.notifiers"

# The user's script builds its notifiers from notify.json beside it (credentials stay out of the
# code, as they would with environment variables; Ray workers import the script too).
HEADER = """
import json, time
from pathlib import Path
from ml_experiment import Trial, job
from ml_experiment.callbacks import Callback
from ml_experiment.callbacks.notifiers import EmailNotifier, SlackNotifier, TelegramNotifier

HERE = Path(__file__).parent
CFG = json.loads((HERE / "notify.json").read_text())
# Apprise's Slack and Telegram plugins post to the local test servers instead of the real hosts.
from apprise.plugins.slack import NotifySlack
from apprise.plugins.telegram import NotifyTelegram
NotifySlack.webhook_url = CFG.get("slack_base", "") + "/services"
NotifyTelegram.notify_url = CFG.get("telegram_base", "") + "/bot"
KINDS = {"slack": SlackNotifier, "telegram": TelegramNotifier, "email": EmailNotifier}


class Timed(Callback):
    # Measures how long each hook of the notifier it wraps keeps the job waiting.
    def __init__(self, inner):
        self.inner = inner

    def secrets(self):
        return self.inner.secrets()

    def _timed(self, hook, *args, **kwargs):
        start = time.monotonic()
        try:
            getattr(self.inner, hook)(*args, **kwargs)
        finally:
            with (HERE / "timings.jsonl").open("a") as f:
                f.write(json.dumps({"hook": hook, "s": time.monotonic() - start}) + "\\n")

    def on_job_start(self, config, **kw):
        self._timed("on_job_start", config, **kw)

    def on_trial_start(self, config, trial, sampled_params, **kw):
        self._timed("on_trial_start", config, trial, sampled_params, **kw)

    def on_trial_end(self, config, trial, metric, exception=None, **kw):
        self._timed("on_trial_end", config, trial, metric, exception, **kw)

    def on_job_end(self, config, exception=None, **kw):
        self._timed("on_job_end", config, exception, **kw)


class Leaky(Callback):
    # A user callback whose error quotes the credential it holds.
    def __init__(self, key):
        self.key = key

    def secrets(self):
        return [self.key]

    def on_job_start(self, config, **kw):
        raise ConnectionError(f"audit service refused key {self.key}")


def build(spec):
    if spec["type"] == "leaky":
        return Leaky(spec["key"])
    notifier = KINDS[spec["type"]](*spec.get("args", []), **spec.get("kwargs", {}))
    return Timed(notifier) if spec.get("timed") else notifier


CALLBACKS = [build(spec) for spec in CFG["notifiers"]]
"""

EXPERIMENT = """
@job(callbacks=CALLBACKS)
def main(fail: bool = False):
    print("training a model")
    if fail:
        raise RuntimeError(CFG.get("error", "the loss became NaN at epoch 3"))
    return {"accuracy": 0.97, "loss": 0.05}

if __name__ == "__main__":
    main()
"""

OBJECTIVE = """
@job(callbacks=CALLBACKS)
def main(x: float = 0.0):
    print("evaluating", round(x, 3))
    if Trial.get_current().number == 1:
        raise ValueError(CFG.get("trial_error", "trial one is broken"))
    return {"y": (x - 0.3) ** 2}

if __name__ == "__main__":
    main()
"""

# Fast, bounded retries for endpoints that fail on purpose.
FAST = {"timeout": 1.0, "retries": 1, "retry_wait": 0.02, "max_total_seconds": 2}
SLACK = "https://hooks.slack.com"


@pytest.fixture(autouse=True)
def _restore_apprise_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job scripts (imported in this process) move Apprise's hosts; put them back after."""
    from apprise.plugins.slack import NotifySlack
    from apprise.plugins.telegram import NotifyTelegram

    monkeypatch.setattr(NotifySlack, "webhook_url", NotifySlack.webhook_url)
    monkeypatch.setattr(NotifyTelegram, "notify_url", NotifyTelegram.notify_url)


def setup_job(folder: Path, notifiers: list[dict[str, Any]], *, group: bool, **cfg: Any) -> None:
    (folder / "notify.json").write_text(json.dumps({"notifiers": notifiers, **cfg}))
    if group:
        write(folder / "objective.py", HEADER + OBJECTIVE)
    else:
        write(folder / "train.py", HEADER + EXPERIMENT)


def run_experiment(
    folder: Path, name: str = "exp", notify: list[str] | None = None, **params: Any
) -> Any:
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    path = folder / f"{name}.json"
    job = {"name": name, "kind": "experiment", "params": params, "run": ["train.py"]}
    path.write_text(json.dumps({**job, **({"notify": notify} if notify else {})}))
    return run_job(load_config(path))[0]


def run_group(
    folder: Path, num_trials: int, name: str = "g", notify: list[str] | None = None
) -> Any:
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    path = folder / f"{name}.json"
    path.write_text(
        json.dumps(
            {
                "name": name,
                "kind": "group",
                "report": False,
                "num_trials": num_trials,
                "sampler": "random",
                "pruner": "none",
                "seed": 11,
                "param_space": {"x": "uniform(-1, 1)"},
                "metric": {"name": "y", "direction": "minimize"},
                "resources_per_worker": {"cpu": 1},
                "run": ["objective.py"],
                **({"notify": notify} if notify else {}),
            }
        )
    )
    return run_job(load_config(path))[0]


def load_study(folder: Path, name: str = "g") -> Any:
    import optuna

    from ml_experiment.hpo import open_storage

    return optuna.load_study(
        study_name=name, storage=open_storage(str(folder / "optuna-studies.journal"))
    )


# -- messages arrive --------------------------------------------------------------------------


def test_experiment_start_and_end_reach_slack(workdir: Path, http_server: Any) -> None:
    path = "/services/T01/B02/abcdefSECRET"
    slack = {"type": "slack", "args": [SLACK + path], "kwargs": {}}
    setup_job(workdir, [slack], group=False, slack_base=http_server.url)
    outcome = run_experiment(workdir)

    assert [r["path"] for r in http_server.requests] == [path, path]
    start, end = http_server.texts
    assert start == f"experiment 'exp' started\nrun: {outcome.run_id}"
    head, *rest = end.splitlines()
    assert head.startswith("experiment 'exp' finished in ")
    assert rest[0].startswith("metrics: accuracy=0.97, loss=0.05")  # then the run's own
    assert rest[1:] == [f"run: {outcome.run_id}"]


def test_failed_experiment_message_carries_the_error(workdir: Path, http_server: Any) -> None:
    from ml_experiment.exceptions import RunFailedError

    token = "424242:AAE-telegram-TOKEN"
    notifier = {"type": "telegram", "args": [token, -100123], "kwargs": {}}
    setup_job(workdir, [notifier], group=False, telegram_base=http_server.url)
    with pytest.raises(RunFailedError, match="RuntimeError: the loss became NaN at epoch 3"):
        run_experiment(workdir, fail=True)

    assert [r["path"] for r in http_server.requests] == [f"/bot{token}/sendMessage"] * 2
    assert all(r["json"]["chat_id"] == -100123 for r in http_server.requests)
    (r,) = all_runs(client(workdir), "exp")
    end = http_server.texts[-1]
    assert end.startswith("experiment 'exp' failed after ")
    assert "error: RuntimeError: the loss became NaN at epoch 3" in end.splitlines()
    assert end.endswith(f"run: {r.info.run_id}")


def test_group_reports_start_each_trial_and_best(
    workdir: Path, http_server: Any, ray_local: None
) -> None:
    url = SLACK + "/services/T01/B02/groupSECRET"
    kwargs = {"send_message_for_trials": True}
    slack = {"type": "slack", "args": [url], "kwargs": kwargs}
    setup_job(workdir, [slack], group=True, slack_base=http_server.url)
    outcome = run_group(workdir, 4)
    assert outcome.counts == {"complete": 3, "fail": 1, "pruned": 0}

    texts = http_server.texts
    assert len(texts) == 1 + 2 * 4 + 1
    assert texts[0] == f"group 'g' started\nrun: {outcome.run_id}"
    study = load_study(workdir)
    trials = {t.number: t for t in study.trials}
    for n, t in trials.items():
        started = [i for i, m in enumerate(texts) if m.startswith(f"group 'g': trial {n} started")]
        ended = [
            i
            for i, m in enumerate(texts)
            if m.startswith(f"group 'g': trial {n} ") and i not in started
        ]
        assert len(started) == 1 and len(ended) == 1 and started[0] < ended[0], n
        assert f"params: x={t.params['x']:.6g}" in texts[started[0]].splitlines()
        end_lines = texts[ended[0]].splitlines()
        if n == 1:
            assert end_lines[0].startswith("group 'g': trial 1 failed after ")
            assert "error: ValueError: trial one is broken" in end_lines
        else:
            assert end_lines[0].startswith(f"group 'g': trial {n} finished in ")
            assert f"value: {t.value:.6g}" in end_lines

    end = texts[-1].splitlines()
    assert end[0].startswith("group 'g' finished in ")
    assert end[1:] == [
        f"best value: {study.best_value:.6g}",
        f"best params: x={study.best_params['x']:.6g}",
        "trials: 3 complete, 0 pruned, 1 failed",
        f"run: {outcome.run_id}",
    ]


def test_email_reports_the_group_end(workdir: Path, smtp_server: Any, ray_local: None) -> None:
    email = {
        "type": "email",
        "args": ["ml-team@example.org"],
        "kwargs": {
            "sender": "ml-bot@example.org",
            "host": "127.0.0.1",
            "port": smtp_server.port,
            "security": "none",
            "username": smtp_server.user,
            "password": smtp_server.password,
        },
    }
    setup_job(workdir, [email], group=True)
    outcome = run_group(workdir, 3)

    assert len(smtp_server.received) == 2  # start and end; trials are not mailed by default
    start, end = smtp_server.received
    assert start.message["Subject"] == "[ml-experiment] group 'g' started"
    assert end.message["Subject"].startswith("[ml-experiment] group 'g' finished in ")
    assert end.rcpt_tos == ["ml-team@example.org"] and end.login == smtp_server.user
    body = end.message.get_content()
    study = load_study(workdir)
    assert f"best value: {study.best_value:.6g}" in body
    assert f"best params: x={study.best_params['x']:.6g}" in body
    assert "trials: 2 complete, 0 pruned, 1 failed" in body
    assert f"run: {outcome.run_id}" in body


def test_unanswering_endpoint_costs_the_group_at_most_its_budget(
    workdir: Path, silent_server: str, ray_local: None, caplog: pytest.LogCaptureFixture
) -> None:
    budget = 1.0  # seconds one message may take, retries included
    # Without the budget one message would take 6 attempts of 1 s; without the silencing, all
    # 10 messages would wait. The margins below hold on a loaded machine (load average 4 on
    # 2 cores) and still tell those apart.
    slack = {
        "type": "slack",
        "args": [SLACK + "/services/T/B/silentSECRET"],
        "kwargs": {
            "timeout": 1.0,
            "retries": 5,
            "retry_wait": 0.02,
            "max_total_seconds": budget,
            "send_message_for_trials": True,
        },
        "timed": True,
    }
    setup_job(workdir, [slack], group=True, slack_base=silent_server)
    with caplog.at_level(logging.WARNING, logger=NOTIFIERS):
        outcome = run_group(workdir, 4)
    assert outcome.counts == {"complete": 3, "fail": 1, "pruned": 0}

    timings = [json.loads(line) for line in (workdir / "timings.jsonl").read_text().splitlines()]
    assert len(timings) == 1 + 2 * 4 + 1  # every hook was called...
    # ...but each waited at most about one budget (6 s without it), and after 3 failed
    # messages in a row the notifier stays silent: the group paid about 3 budgets in all
    # (10 without the silencing). A message the server never answers waits its whole budget.
    assert max(t["s"] for t in timings) <= budget + 1.5, timings
    waited = [t for t in timings if t["s"] >= 0.9 * budget]
    assert len(waited) == 3, timings
    assert sum(t["s"] for t in timings) <= 3 * budget + 2.0, timings
    notes = [r.getMessage() for r in caplog.records if r.name == NOTIFIERS]
    assert sum("notification not sent" in m for m in notes) == 3
    assert any("silent until the next job starts" in m for m in notes)
    assert "silentSECRET" not in caplog.text


# -- credentials ------------------------------------------------------------------------------

SLACK_PATH = "/services/T0TEAM/B0HOOK/slackHOOKsecret7781"
TG_TOKEN = "5566778:TGbotSECRETtoken-qq9"
SMTP_WRONG_PASSWORD = "wrongSMTPsecret-55"
CUSTOM_KEY = "audit-KEY-secret-3141"
NOTIFY_PATH = "/hooks/T9/notifyHOOKsecret-4455"
NOTIFY_PASSWORD = "notifyPASSsecret-8181"


def _read_everything(c: Any) -> list[tuple[str, str]]:
    """(where, text) for every param, tag, metric name and text artifact of every run."""
    from mlflow.entities import ViewType

    found: list[tuple[str, str]] = []
    for exp in c.search_experiments(view_type=ViewType.ALL):
        found.append((f"experiment {exp.name}", f"{exp.name} {exp.tags}"))
        for r in c.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=5000):
            rid = r.info.run_id
            found.append((f"{rid} run name", str(r.info.run_name)))
            found += [(f"{rid} param {k}", f"{k}={v}") for k, v in r.data.params.items()]
            found += [(f"{rid} tag {k}", f"{k}={v}") for k, v in r.data.tags.items()]
            found += [(f"{rid} metric", k) for k in r.data.metrics]
            dest = tempfile.mkdtemp(prefix="mlx-scan-")
            try:
                local = Path(c.download_artifacts(rid, "", dest))
                for f in sorted(p for p in local.rglob("*") if p.is_file()):
                    text = f.read_bytes().decode("utf-8", errors="replace")
                    found.append((f"{rid} artifact {f.relative_to(local)}", text))
            finally:
                shutil.rmtree(dest, ignore_errors=True)
    return found


def test_no_credential_reaches_the_knowledge_center_or_the_logs(
    workdir: Path,
    http_server: Any,
    smtp_server: Any,
    closed_port: int,
    ray_local: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ml_experiment.exceptions import RunFailedError

    slack_url = SLACK + SLACK_PATH
    # The job files' notify: one URL read from the environment, one written in them (down).
    hook = http_server.url.replace("http://", "json://") + NOTIFY_PATH
    monkeypatch.setenv("MLX_TEST_HOOK", hook)
    notify = ["${MLX_TEST_HOOK}", f"json://bot:{NOTIFY_PASSWORD}@127.0.0.1:{closed_port}/?retry=0"]
    secrets = [
        hook,
        NOTIFY_PATH,
        NOTIFY_PATH.rsplit("/", 1)[1],
        NOTIFY_PASSWORD,
        SLACK_PATH,
        SLACK_PATH.rsplit("/", 1)[1],
        TG_TOKEN,
        TG_TOKEN.split(":", 1)[1],
        smtp_server.password,
        SMTP_WRONG_PASSWORD,
        CUSTOM_KEY,
    ]

    def notifiers(smtp_password: str) -> list[dict[str, Any]]:
        return [
            {
                "type": "slack",
                "args": [slack_url],
                "kwargs": {"send_message_for_trials": True},
            },
            {"type": "telegram", "args": [TG_TOKEN, 777], "kwargs": FAST},  # to a closed port
            {
                "type": "email",
                "args": ["ml-team@example.org"],
                "kwargs": {
                    "sender": "ml-bot@example.org",
                    "host": "127.0.0.1",
                    "port": smtp_server.port,
                    "security": "none",
                    "username": smtp_server.user,
                    "password": smtp_password,
                    **FAST,
                },
            },
            {"type": "leaky", "key": CUSTOM_KEY},
        ]

    # The user's own errors quote the credentials too (the same webhook, the same bot).
    leak = f"could not post the report to {slack_url} (bot {TG_TOKEN}, hook {hook})"
    bases = {"slack_base": http_server.url, "telegram_base": f"http://127.0.0.1:{closed_port}"}
    with caplog.at_level(logging.INFO):
        # An experiment whose notifiers all work but Telegram, then one that fails.
        setup_job(workdir, notifiers(smtp_server.password), group=False, error=leak, **bases)
        run_experiment(workdir, "exp-ok", notify)
        with pytest.raises(RunFailedError, match="of 'exp-failed' failed: RuntimeError"):
            run_experiment(workdir, "exp-failed", notify, fail=True)
        # A group whose Slack endpoint answers 404 quoting the secret path, whose SMTP login
        # is refused, and one of whose trials fails quoting the secrets.
        http_server.queue(404, f"no_service for {SLACK_PATH}".encode(), times=50)
        setup_job(workdir, notifiers(SMTP_WRONG_PASSWORD), group=True, trial_error=leak, **bases)
        outcome = run_group(workdir, 4, notify=notify)
    assert outcome.counts == {"complete": 3, "fail": 1, "pruned": 0}

    # The notifiers really ran with these credentials.
    assert {r["path"] for r in http_server.requests} == {SLACK_PATH, NOTIFY_PATH}
    assert http_server.delivered == 8  # the experiments' start and end messages, Slack and hook
    assert len(smtp_server.received) == 4 and smtp_server.auth_attempts
    c = client(workdir)
    assert len(all_runs(c, "g")) == 5
    runs = {r.info.run_name: r for name in ("exp-ok", "exp-failed") for r in all_runs(c, name)}
    assert runs["exp-ok"].info.status == "FINISHED" and runs["exp-failed"].info.status == "FAILED"
    assert "***" in runs["exp-failed"].data.tags["error"]
    assert "Leaky.on_job_start" in runs["exp-ok"].data.tags["callbacks.failed"]

    # Nothing anywhere in the knowledge center: params, tags, metrics, text artifacts...
    everything = _read_everything(c)
    assert any("logs/console.log" in where for where, _ in everything)
    assert any("error/traceback.txt" in where for where, _ in everything)
    leaks = [(where, s) for where, text in everything for s in secrets if s in text]
    assert leaks == []
    # ...nor in the raw files that hold it (database, artifact store, Optuna journal).
    inputs = {"notify.json", "train.py", "objective.py", "exp-ok.json", "exp-failed.json", "g.json"}
    for f in workdir.rglob("*"):
        if f.is_file() and f.name not in inputs:
            raw = f.read_bytes()
            assert not [s for s in secrets if s.encode() in raw], f

    # The failure logs of notifiers and callbacks name what failed, without the credentials.
    notes = [r.getMessage() for r in caplog.records if r.name == NOTIFIERS]
    assert any("TelegramNotifier: notification not sent" in m for m in notes)
    assert any("SlackNotifier: notification not sent: Slack: 3 attempt(s)" in m for m in notes)
    assert any("error=404" in m for m in notes)
    assert any("EmailNotifier: notification not sent: E-Mail: 2 attempt(s)" in m for m in notes)
    assert any("AppriseNotifier: notification not sent: JSON: 1 attempt(s)" in m for m in notes)
    assert any("audit service refused key ***" in r.getMessage() for r in caplog.records)
    assert [s for s in secrets if s in caplog.text] == []


# -- notify: in the job file ------------------------------------------------------------------

TRAIN = """
from ml_experiment import job

@job
def main(lr: float = 0.1):
    print("training with", lr)
    return {"accuracy": 0.9}

if __name__ == "__main__":
    main()
"""


def test_job_file_notify_urls_one_down_one_delivers(
    workdir: Path, http_server: Any, closed_port: int
) -> None:
    from tests.conftest import artifact_text, run_cli

    hook = http_server.url.replace("http://", "json://") + "/hooks/jobFILEsecret-9931"
    down = f"json://127.0.0.1:{closed_port}/down/literalSECRET-77?retry=0"
    write(workdir / "train.py", TRAIN)
    # One URL from the environment (the usual way), one written in the file, which is down.
    write(workdir / "job.yaml", f'name: notified\nrun: train.py\nnotify: ["{down}", "${{HOOK}}"]\n')
    res = run_cli("run", "job.yaml", cwd=workdir, env={"HOOK": hook})
    assert res.returncode == 0, res.stderr

    c = client(workdir)
    (run,) = all_runs(c, "notified")
    assert run.info.status == "FINISHED"
    start, end = http_server.requests  # the live one received both, despite the dead one
    assert start["path"] == end["path"] == "/hooks/jobFILEsecret-9931"
    assert start["json"]["title"] == "experiment 'notified' started"
    assert end["json"]["title"].startswith("experiment 'notified' finished in ")
    metrics, run_line = end["json"]["message"].splitlines()
    assert metrics.startswith("metrics: accuracy=0.9") and run_line == f"run: {run.info.run_id}"
    output = res.stdout + res.stderr
    assert "AppriseNotifier: notification not sent: JSON: 1 attempt(s)" in output

    assert "notify" not in json.loads(artifact_text(c, run.info.run_id, "config/job.json"))
    secrets = [hook, "/hooks/jobFILEsecret-9931", down, "/down/literalSECRET-77"]
    assert [s for s in secrets if s in output] == []
    leaks = [(where, s) for where, text in _read_everything(c) for s in secrets if s in text]
    assert leaks == []
    for f in workdir.rglob("*"):
        if f.is_file() and f.name not in {"job.yaml", "train.py"}:
            assert not [s for s in secrets if s.encode() in f.read_bytes()], f


def test_job_file_notify_url_naming_an_unset_variable_is_bad_input(workdir: Path) -> None:
    from tests.conftest import run_cli

    write(workdir / "train.py", TRAIN)
    write(
        workdir / "job.yaml", 'name: notified\nrun: train.py\nnotify: "slack://${NO_SUCH_VAR_1}"\n'
    )
    res = run_cli("run", "job.yaml", cwd=workdir, env={"NO_SUCH_VAR_1": ""})
    assert res.returncode == 2, res.stderr
    line = res.stderr.strip().splitlines()[-1]  # after MLflow's notes on creating its database
    assert line.startswith("error: ") and line.endswith(
        "job.yaml: notify[0]: environment variable NO_SUCH_VAR_1 is not set"
    )
    assert all_runs(client(workdir), "notified") == []


# -- desktop ----------------------------------------------------------------------------------

NOTIFICATION_SERVER = """
import json, sys
import dbus, dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

DBusGMainLoop(set_as_default=True)
OUT = sys.argv[1]

class Notifications(dbus.service.Object):
    @dbus.service.method(
        "org.freedesktop.Notifications", in_signature="susssasa{sv}i", out_signature="u"
    )
    def Notify(self, app, replaces, icon, title, body, actions, hints, timeout):
        with open(OUT, "a") as f:
            f.write(json.dumps([str(app), str(title), str(body)]) + "\\n")
        return 1

bus = dbus.SessionBus()
name = dbus.service.BusName("org.freedesktop.Notifications", bus)
Notifications(bus, "/org/freedesktop/Notifications")
open(OUT + ".ready", "w").close()
GLib.MainLoop().run()
"""

DESKTOP_JOB = """
from types import SimpleNamespace
from ml_experiment.callbacks.notifiers import DesktopNotifier

n = DesktopNotifier()
assert [type(p).__name__ for p in n._services] == ["NotifyDBus"], n._services
cfg = SimpleNamespace(name="svm", kind="group")
n.on_job_start(cfg)
n.on_job_end(cfg, exception=ValueError("boom"), duration=3)
"""


def _system_dbus_modules(folder: Path) -> Path | None:
    """Debian's python3-dbus and python3-gi, for this interpreter (pip cannot build them here)."""
    import shutil
    import subprocess
    import sysconfig

    dist = Path("/usr/lib/python3/dist-packages")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    names = ["gi", "dbus", f"_dbus_bindings{suffix}", f"_dbus_glib_bindings{suffix}"]
    if not (shutil.which("dbus-run-session") and all((dist / n).exists() for n in names)):
        return None
    check = subprocess.run(["/usr/bin/python3", "-c", "import dbus, gi"], capture_output=True)
    if check.returncode != 0:
        return None
    folder.mkdir()
    for n in names:
        (folder / n).symlink_to(dist / n)
    return folder


def test_desktop_notification_over_a_private_dbus_session(tmp_path: Path) -> None:
    import subprocess
    import sys

    modules = _system_dbus_modules(tmp_path / "sysmods")
    if modules is None:
        pytest.skip("needs dbus-run-session, python3-dbus and python3-gi (see scripts/)")
    (tmp_path / "server.py").write_text(NOTIFICATION_SERVER)
    (tmp_path / "job.py").write_text(DESKTOP_JOB)
    out = tmp_path / "shown.jsonl"
    script = (
        f"/usr/bin/python3 server.py {out} & "
        f"for i in $(seq 100); do [ -e {out}.ready ] && break; sleep 0.05; done; "
        f"PYTHONPATH={modules} {sys.executable} job.py; rc=$?; kill %1; exit $rc"
    )
    res = subprocess.run(
        ["dbus-run-session", "--", "bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    shown = [json.loads(line) for line in out.read_text().splitlines()]
    assert shown == [
        ["ml-experiment", "group 'svm' started", ""],
        ["ml-experiment", "group 'svm' failed after 3.0s", "error: ValueError: boom"],
    ]
