"""A real class server on this machine: JupyterHub, nbgrader's exchange, sscity grading.

The hub is written by ``sscity.course.hub.write_hub_config`` (what ``sscity course
hub-config`` writes for an instructor) and started for real: configurable-http-proxy from
npm, the DummyAuthenticator, LocalProcessSpawner with one OS account per student (created
for the test, removed after), so nbgrader's exchange sees three different students.

- the instructor releases 00-orientation to the exchange (``nbgrader release_assignment``);
- through the hub's REST API the test starts each student's JupyterLab and makes a token;
  through the hub's proxy, with each student's token, it lists the courses and fetches the
  module with nbgrader's own Assignment List API (what *Nbgrader -> Assignments* in
  JupyterLab calls), writes the answers with the Contents API (alice right, bob one task
  wrong) and submits; carol fetches but her submit meets an exchange whose inbound folder
  she may not write to: the server reports it, and she has no grade;
- the instructor collects (``nbgrader collect``); ``sscity course grade`` grades the
  collected ``submitted/`` folder in the sandbox: alice has every autograded point, bob
  fewer, carol is absent;
- the feedback pages are staged (``stage_feedback``) and released (``nbgrader
  release_feedback``); alice and bob fetch them from their JupyterLab and read their scores.

Needs root (accounts, LocalProcessSpawner), jupyterhub (pip), node and
configurable-http-proxy (npm: ``npm install -g configurable-http-proxy``, or set
``SSCITY_CHP`` to its path). Otherwise it is skipped and says what is missing.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import nbformat
import pytest

requests = pytest.importorskip("requests")

ROOT = Path(__file__).resolve().parents[1]
MODULE = "00-orientation"
# A new course id each run: a stray exchange elsewhere can never make the test pass.
COURSE = f"sscity-hubtest-{secrets.token_hex(3)}"
INSTRUCTOR = "sscinstr"
STUDENTS = ("sscalice", "sscbob", "ssccarol")
BIN = Path(sys.executable).parent



def _missing() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root: LocalProcessSpawner runs each student's server as their own account"
    for tool in ("useradd", "userdel"):
        if not shutil.which(tool):
            return f"{tool} is missing"
    if not (BIN / "jupyterhub").exists():
        return "jupyterhub is not installed (pip install jupyterhub)"
    if not shutil.which("node"):
        return "node is missing (apt-get install nodejs npm)"
    if not _chp():
        return ("configurable-http-proxy is missing (npm install -g configurable-http-proxy, "
                "or set SSCITY_CHP to its path)")
    return None


def _chp() -> str | None:
    explicit = os.environ.get("SSCITY_CHP")
    if explicit and Path(explicit).exists():
        return explicit
    return shutil.which("configurable-http-proxy")


def _reachable_by_others(path: Path) -> bool:
    """Whether another account may run ``path``: every folder above it must be searchable."""
    path = path.resolve()
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _kill_processes_of(account: str) -> None:
    """Stop, by process id, what still runs as an account this test created."""
    uid = pwd.getpwnam(account).pw_uid
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            owner = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(owner.split()[1]) == uid:
            try:
                os.kill(int(status.parent.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _singleuser_command(base: Path) -> list[str]:
    """``jupyterhub-singleuser`` as the students' accounts can run it.

    Where this interpreter lives below a private folder (pyenv under /root), the students'
    servers run a system Python of the same version in a small venv that reads this
    environment's packages (same ABI) and its Jupyter settings, so the server extensions
    (nbgrader's Assignment List) are the ones installed here.
    """
    if _reachable_by_others(Path(sys.executable)):
        return [str(BIN / "jupyterhub-singleuser")]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = next((p for p in (shutil.which(version), f"/usr/bin/{version}")
                   if p and Path(p).exists() and _reachable_by_others(Path(p))), None)
    if system is None:
        pytest.skip(f"hub end-to-end test skipped: {sys.executable} cannot be run by other "
                    f"accounts and there is no system {version} to run the students' servers")
    bridge = base / "student-python"
    _run([system, "-m", "venv", "--without-pip", str(bridge)], cwd=base)
    site_packages = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
    (next((bridge / "lib").glob("python3*/site-packages")) / "_sscity_bridge.pth").write_text(
        f"import site; site.addsitedir({str(site_packages)!r})\n")
    for part in ("etc/jupyter", "share/jupyter"):
        (bridge / part).parent.mkdir(parents=True, exist_ok=True)
        (bridge / part).symlink_to(Path(sys.prefix) / part)
    return [str(bridge / "bin" / "python"), "-m", "jupyterhub.singleuser"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(cmd, cwd, env=None, check=True):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done


class Hub:
    def __init__(self, url: str, token: str, log: Path, course: Path, config_dir: Path, exchange: Path):
        self.url, self.token, self.log = url, token, log
        self.course, self.config_dir, self.exchange = course, config_dir, exchange
        self.user_tokens: dict[str, str] = {}

    def api(self, method: str, path: str, **kw):
        reply = requests.request(method, f"{self.url}hub/api/{path}",
                                 headers={"Authorization": f"token {self.token}"}, timeout=60, **kw)
        assert reply.status_code < 400, f"{method} {path}: {reply.status_code} {reply.text}\n{self.tail()}"
        return reply.json() if reply.text else None

    def user(self, name: str, method: str, path: str, **kw):
        """A request to ``name``'s JupyterLab, through the hub's proxy, with their token."""
        reply = requests.request(method, f"{self.url}user/{name}/{path}", timeout=300,
                                 headers={"Authorization": f"token {self.user_tokens[name]}"}, **kw)
        assert reply.status_code < 400, f"{method} {path}: {reply.status_code} {reply.text[:2000]}"
        return reply.json()

    def nbgrader(self, *args, check=True):
        """An instructor's nbgrader command in the course root, with the hub's settings."""
        env = dict(os.environ, JUPYTER_CONFIG_PATH=str(self.config_dir),
                   PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
        return _run([sys.executable, "-m", "nbgrader", *args], cwd=self.course, env=env, check=check)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def hub():
    reason = _missing()
    if reason:
        pytest.skip(f"hub end-to-end test skipped: {reason}")
    from sscity.course.hub import write_hub_config

    base = Path(tempfile.mkdtemp(prefix="sscity-hub-"))
    base.chmod(0o755)  # the students' accounts must reach their homes below it
    created: list[str] = []
    process = None
    try:
        for name in STUDENTS:
            home = base / "home" / name
            home.mkdir(parents=True)
            subprocess.run(["userdel", name], capture_output=True)  # a leftover of a killed run
            _run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/bash",
                  "--user-group", name], cwd=base)
            created.append(name)
            shutil.chown(home, name, name)
        course = base / "course"
        (course / "modules").mkdir(parents=True)
        shutil.copy2(ROOT / "nbgrader_config.py", course)
        shutil.copytree(ROOT / "modules" / MODULE, course / "modules" / MODULE)
        token = secrets.token_hex(32)
        port = _free_port()
        config = write_hub_config(
            base / "hub", course_id=COURSE, exchange=base / "exchange", instructors=[INSTRUCTOR],
            students=list(STUDENTS), port=port, hub_port=_free_port(),
            proxy_api_port=_free_port(), proxy_command=[_chp()], course_root=course,
            singleuser_command=_singleuser_command(base))
        log = base / "hub.log"
        env = dict(os.environ, SSCITY_HUB_API_TOKEN=token,
                   PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
        with open(log, "w") as out:
            process = subprocess.Popen(config.command(), cwd=config.dest, env=env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        the_hub = Hub(config.url, token, log, course, config.dest / "jupyter", config.exchange)
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{config.url}hub/api/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, f"the hub stopped:\n{the_hub.tail()}"
            assert time.monotonic() < deadline, f"the hub did not answer in 60 s:\n{the_hub.tail()}"
            time.sleep(0.5)
        yield the_hub
    finally:
        if process is not None and process.poll() is None:
            process.terminate()  # the hub stops the users' servers and its proxy
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for name in created:
            _kill_processes_of(name)  # a server the hub could not stop
            subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _start_server(hub: Hub, name: str) -> None:
    hub.api("POST", f"users/{name}/server")
    deadline = time.monotonic() + 120
    while not hub.api("GET", f"users/{name}")["servers"].get("", {}).get("ready"):
        assert time.monotonic() < deadline, f"{name}'s server did not start:\n{hub.tail()}"
        time.sleep(1)
    hub.user_tokens[name] = hub.api("POST", f"users/{name}/tokens",
                                    json={"expires_in": 3600, "note": "test"})["token"]


def _answers(released: dict, wrong: dict[str, str]) -> dict:
    """The released notebook with every answer cell filled from the solution (or ``wrong``)."""
    solution = nbformat.read(ROOT / "solutions" / MODULE / "assignment.ipynb", as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in solution.cells}
    nb = nbformat.from_dict(released)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            gid = meta["grade_id"]
            code = wrong.get(gid) or "\n".join(
                line for line in by_id[gid].source.splitlines()
                if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
            cell.source = code
    return nb


def _action(hub: Hub, name: str, action: str) -> dict:
    reply = hub.user(name, "POST", f"assignments/{action}",
                     data={"course_id": COURSE, "assignment_id": MODULE})
    return reply


@pytest.mark.slow
def test_release_fetch_submit_collect_grade_feedback_through_the_hub(hub):
    # The instructor releases the module to nbgrader's exchange.
    hub.nbgrader("release_assignment", MODULE, "--force")
    assert (hub.exchange / COURSE / "outbound" / MODULE / "assignment.ipynb").is_file()

    wrong_answer = next(w for w in tomllib.loads(
        (ROOT / "solutions" / MODULE / "known-wrong.toml").read_text())["wrong"]
        if w["answer"] == "stations-gdf")
    plan = {"sscalice": {}, "sscbob": {"stations-gdf": wrong_answer["code"]}}
    for name in STUDENTS:
        _start_server(hub, name)
        # The Assignment List of JupyterLab: the course is there, and the module to fetch.
        courses = hub.user(name, "GET", "courses")
        assert courses["success"] and courses["value"] == [COURSE], courses
        listed = _action(hub, name, "fetch")
        assert listed.get("success"), listed
        fetched = [a for a in listed["value"] if a["assignment_id"] == MODULE and a["status"] == "fetched"]
        assert fetched, listed
        # Students never see the instructor tools: no formgrader, no Create Assignment.
        reply = requests.get(f"{hub.url}user/{name}/formgrader", timeout=60,
                             headers={"Authorization": f"token {hub.user_tokens[name]}"})
        assert reply.status_code == 404, (reply.status_code, reply.text[:500])
        lab = requests.get(f"{hub.url}user/{name}/lab", timeout=60,
                           headers={"Authorization": f"token {hub.user_tokens[name]}"})
        page = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', lab.text, re.S)[1])
        assert {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment"} <= set(
            page["disabledExtensions"]), page.get("disabledExtensions")
        assert "@jupyter/nbgrader:assignment-list" not in page["disabledExtensions"]
        if name not in plan:
            continue
        path = f"api/contents/{MODULE}/assignment.ipynb"
        released = hub.user(name, "GET", path)["content"]
        answered = _answers(released, plan[name])
        hub.user(name, "PUT", path, json={"type": "notebook", "format": "json", "content": answered})
        done = _action(hub, name, "submit")
        assert done.get("success"), done
        assert any(a["status"] == "submitted" for a in done["value"]), done
        # ... into the hub's exchange, as this student (the account nbgrader saw).
        handed_in = list((hub.exchange / COURSE / "inbound").glob(f"{name}+{MODULE}+*"))
        assert len(handed_in) == 1 and handed_in[0].stat().st_uid == pwd.getpwnam(name).pw_uid

    # carol's submit meets an inbound folder she may not write to: her server says so.
    inbound = hub.exchange / COURSE / "inbound"
    mode = stat.S_IMODE(inbound.stat().st_mode)
    inbound.chmod(0o755)
    try:
        refused = _action(hub, "ssccarol", "submit")
    finally:
        inbound.chmod(mode)
    assert refused.get("success") is False and "permission" in refused["value"], refused

    # The instructor collects and grades with sscity, in the sandbox.
    hub.nbgrader("collect", MODULE)
    collected = sorted(p.name for p in (hub.course / "submitted").iterdir())
    assert collected == ["sscalice", "sscbob"], collected
    out = hub.course / "grades"
    grade = [sys.executable, "-m", "sscity", "--root", str(ROOT), "course", "grade",
             str(hub.course / "submitted"), "--out", str(out), "--jobs", "2", "--no-progress",
             "--module", MODULE]
    from sscity.course.sandbox import isolation

    if not isolation().isolated:
        grade.append("--no-sandbox")
    _run(grade, cwd=ROOT)
    with open(out / "grades.csv", newline="") as handle:
        rows = {r["student"]: r for r in csv.DictReader(handle) if r["module"] == MODULE}
    assert set(rows) == {"sscalice", "sscbob"}, rows  # carol submitted nothing: no grade
    alice, bob = (float(rows[s]["score"]) for s in ("sscalice", "sscbob"))
    max_auto = float(rows["sscalice"]["max_score"])
    assert alice == max_auto > 0, rows["sscalice"]
    assert bob < alice, rows["sscbob"]

    # Feedback goes back through the exchange; each student fetches it in JupyterLab.
    import argparse

    from sscity.course.hub import add_stage_feedback_parser

    parser = argparse.ArgumentParser()
    add_stage_feedback_parser(parser.add_subparsers())
    args = parser.parse_args(["stage-feedback", MODULE, "--grades", str(out),
                              "--course-dir", str(hub.course)])
    assert args.func(args) == 0
    pages = (hub.course / "feedback").glob(f"*/{MODULE}/assignment.html")
    assert sorted(p.parent.parent.name for p in pages) == ["sscalice", "sscbob"]
    hub.nbgrader("release_feedback", MODULE)
    for name, score in (("sscalice", alice), ("sscbob", bob)):
        listed = _action(hub, name, "fetch_feedback")
        assert listed.get("success"), listed
        folder = hub.user(name, "GET", f"api/contents/{MODULE}/feedback")
        stamps = [item["path"] for item in folder["content"] if item["type"] == "directory"]
        assert len(stamps) == 1, folder
        page = hub.user(name, "GET", f"api/contents/{stamps[0]}/assignment.html")["content"]
        assert f"<b>{name}</b>" in page and f"<b>{score:g} / {max_auto:g}</b>" in page, page[:2000]
    listed = _action(hub, "ssccarol", "fetch_feedback")
    assert not [a for a in listed.get("value", []) if a.get("status") == "submitted"], listed


# --- the configuration itself (fast; no hub started) -----------------------------------------

def _load(path: Path, **env):
    from traitlets.config import Config

    config = Config()
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: config})
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return config


def test_hub_config_files_say_what_the_class_needs(tmp_path):
    from sscity.course.hub import write_hub_config

    course = tmp_path / "course"
    course.mkdir()
    written = write_hub_config(tmp_path / "hub", course_id="sscity-2027", exchange=tmp_path / "ex",
                               instructors=["tanaka"], students=["s001", "s002"], port=8123,
                               authenticator="pam", course_root=course, ip="0.0.0.0")
    hub = _load(written.jupyterhub_config)
    assert hub.JupyterHub.authenticator_class == "pam"
    assert hub.Authenticator.allowed_users == {"tanaka", "s001", "s002"}
    assert hub.Authenticator.admin_users == {"tanaka"}
    assert hub.JupyterHub.bind_url == "http://0.0.0.0:8123"
    from types import SimpleNamespace

    config_path = hub.Spawner.environment["JUPYTER_CONFIG_PATH"]
    as_user = lambda name: config_path(SimpleNamespace(user=SimpleNamespace(name=name)))  # noqa: E731
    assert as_user("tanaka") == str(written.nbgrader_config.parent)
    students_dir = written.dest / "jupyter-students"
    assert as_user("s001").split(os.pathsep) == [str(students_dir), str(written.nbgrader_config.parent)]
    page = json.loads((students_dir / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"]["@jupyter/nbgrader:formgrader"] is True
    server = json.loads((students_dir / "jupyter_server_config.d" / "sscity-students.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"]["nbgrader.server_extensions.formgrader"] is False
    assert "services" not in hub.JupyterHub  # no token in the environment: no service
    with_token = _load(written.jupyterhub_config, SSCITY_HUB_API_TOKEN="abc")
    assert with_token.JupyterHub.services == [{"name": "sscity-course", "api_token": "abc"}]
    student = _load(written.nbgrader_config, JUPYTERHUB_USER="s001")
    assert student.CourseDirectory.course_id == "sscity-2027"
    assert student.Exchange.root == str(tmp_path / "ex")
    assert "root" not in student.CourseDirectory  # students never get the course repository
    instructor = _load(written.nbgrader_config, JUPYTERHUB_USER="tanaka")
    assert instructor.CourseDirectory.root == str(course)
    assert stat.S_IMODE((tmp_path / "ex").stat().st_mode) == 0o777
    assert "#" in written.jupyterhub_config.read_text()  # every setting says what it is for


@pytest.mark.parametrize("change, words", [
    ({"authenticator": "ldap"}, "unknown authenticator"),
    ({"course_id": "my course"}, "course id"),
    ({"students": ["ann+1"]}, "not a valid user name"),
    ({"students": ["tanaka"]}, "both as instructor and as student"),
    ({"instructors": []}, "at least one instructor"),
    ({"ip": "0.0.0.0"}, "dummy authenticator lets anybody in"),
    ({"port": 70000}, "not a TCP port"),
])
def test_hub_config_refuses_bad_input_in_both_languages(tmp_path, change, words):
    from sscity.course.hub import write_hub_config

    args = dict(course_id="c1", exchange=tmp_path / "ex", instructors=["tanaka"], students=["s001"],
                authenticator="dummy", **{"port": 8000})
    args.update(change)
    with pytest.raises(ValueError) as caught:
        write_hub_config(tmp_path / "hub", **args)
    text = str(caught.value)
    assert words in text and " / " in text and any("\u3040" <= ch <= "\u30ff" for ch in text), text
    assert not (tmp_path / "hub").exists()


def test_hub_config_command_reads_the_class_list(tmp_path, capsys):
    from sscity.cli import main

    (tmp_path / "class.txt").write_text("# class of 2027\ns001\n\ns002  # late enrolment\n")
    argv = ["--root", str(ROOT), "course", "hub-config", str(tmp_path / "hub"), "--course-id", "c1",
            "--instructor", "tanaka", "--student-file", str(tmp_path / "class.txt"),
            "--exchange", str(tmp_path / "ex"), "--course-root", str(tmp_path)]
    assert main(argv) == 0  # the `sscity` command itself, as an instructor types it
    assert "2 students" in capsys.readouterr().out
    hub = _load(tmp_path / "hub" / "jupyterhub_config.py")
    assert hub.Authenticator.allowed_users == {"tanaka", "s001", "s002"}
    assert main(argv) != 0  # never overwrites a set-up by accident
    assert "not empty" in capsys.readouterr().err
