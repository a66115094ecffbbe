"""A class server: the JupyterHub and nbgrader set-up of the course (``sscity course hub-config``).

``write_hub_config(dest, ...)`` writes, into a new folder ``dest``:

- ``jupyterhub_config.py`` -- JupyterHub: who may log in (PAM local users, or the
  DummyAuthenticator for tests), one JupyterLab per user started as that user's own OS
  account (``LocalProcessSpawner``), the proxy, and the nbgrader settings every user's
  server reads (through ``JUPYTER_CONFIG_PATH``);
- ``jupyter/nbgrader_config.py`` -- nbgrader for everybody on the hub: the course id and the
  exchange folder; for instructors also ``CourseDirectory.root`` (the course repository);
- ``jupyter-students/`` -- read by students' servers only: turns off formgrader and
  *Create Assignment*;
- ``README.txt`` -- the commands to start it.

``stage_feedback(course_root, grade_out, module)`` puts the feedback pages of
``sscity course grade`` where ``nbgrader release_feedback`` looks for them, so students get
them back with *Fetch Feedback* in JupyterLab. ``HUB.md`` beside this file is the instructor's
guide (real classes, and what scales past one machine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path

__all__ = ["AUTHENTICATORS", "HubConfig", "add_hub_config_parser", "add_stage_feedback_parser",
           "cmd_hub_config", "cmd_stage_feedback", "read_class_list", "stage_feedback", "write_hub_config"]

AUTHENTICATORS = ("dummy", "pam")
# Instructor tools of nbgrader that students' JupyterLab must not show (nbgrader's names).
STUDENT_HIDDEN_LAB = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment")
STUDENT_HIDDEN_SERVER = ("nbgrader.server_extensions.formgrader",)
# nbgrader's exchange names submissions "<student>+<assignment>+<timestamp>": no '+' in ids.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
_COURSE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class HubConfig:
    """What ``write_hub_config`` wrote: the files and the commands to run."""

    def __init__(self, dest: Path, jupyterhub_config: Path, nbgrader_config: Path,
                 exchange: Path, url: str):
        self.dest = dest
        self.jupyterhub_config = jupyterhub_config
        self.nbgrader_config = nbgrader_config
        self.exchange = exchange
        self.url = url

    def command(self) -> list[str]:
        """The command that starts the hub (as root, for LocalProcessSpawner)."""
        hub = Path(sys.executable).with_name("jupyterhub")
        return [str(hub if hub.exists() else "jupyterhub"), "-f", str(self.jupyterhub_config)]


def _bad(en: str, ja: str) -> ValueError:
    return ValueError(f"{en} / {ja}")


def _check_ids(kind_en: str, kind_ja: str, names) -> list[str]:
    names = list(names)
    for name in names:
        if not isinstance(name, str) or not _ID.match(name):
            raise _bad(f"{kind_en} {name!r} is not a valid user name: use letters, digits and "
                       ". _ @ - only (no '+', no spaces), starting with a letter or digit",
                       f"{kind_ja} {name!r} はユーザー名に使えません。英数字と . _ @ - だけを使い、"
                       "英数字で始めてください（+ や空白は使えません）")
    return names


def write_hub_config(dest, *, course_id: str, exchange, instructors, students, port: int = 8000,
                     authenticator: str = "dummy", course_root=None, ip: str = "127.0.0.1",
                     hub_port: int | None = None, proxy_api_port: int | None = None,
                     proxy_command=None, singleuser_command=None, dummy_password: str | None = None,
                     api_token_env: str | None = "SSCITY_HUB_API_TOKEN",
                     create_exchange: bool = True, overwrite: bool = False) -> HubConfig:
    """Write a JupyterHub + nbgrader exchange set-up for the course into ``dest``.

    ``authenticator``: ``"pam"`` (the machine's own accounts: a real class on one server) or
    ``"dummy"`` (any password, or ``dummy_password``: tests and trials only). Every user must
    exist as an OS account: each JupyterLab runs as its user, which is what keeps students'
    files apart and what nbgrader's exchange uses as the student id. ``course_root`` is the
    course repository on the server (instructors grade there); ``exchange`` is nbgrader's
    shared exchange folder (created world-writable, as nbgrader requires, unless
    ``create_exchange`` is false). With ``api_token_env`` the hub registers a service
    ``sscity-course`` whose token is read from that environment variable at start-up (never
    written to a file): scripts use it to start servers and make user tokens.
    """
    dest = Path(dest).expanduser().resolve()
    exchange = Path(exchange).expanduser().resolve()
    if authenticator not in AUTHENTICATORS:
        raise _bad(f"unknown authenticator {authenticator!r}: use one of {', '.join(AUTHENTICATORS)} "
                   "(pam: the server's own accounts; dummy: tests only)",
                   f"認証方式 {authenticator!r} は使えません。{', '.join(AUTHENTICATORS)} のいずれかを"
                   "指定してください（pam: サーバーのアカウント、dummy: テスト専用）")
    if not isinstance(course_id, str) or not _COURSE_ID.match(course_id):
        raise _bad(f"course id {course_id!r} is not valid: use letters, digits and . _ - only, e.g. "
                   "'sscity-2027'", f"コース ID {course_id!r} は使えません。英数字と . _ - だけを使って"
                   "ください（例: 'sscity-2027'）")
    instructors = _check_ids("instructor", "教員", instructors)
    students = _check_ids("student", "学生", students)
    if not instructors:
        raise _bad("give at least one instructor (--instructor NAME)",
                   "教員を 1 人以上指定してください（--instructor NAME）")
    both = sorted(set(instructors) & set(students))
    if both:
        raise _bad(f"{', '.join(both)} listed both as instructor and as student: list each person once",
                   f"{', '.join(both)} が教員と学生の両方に含まれています。どちらか一方にしてください")
    for name, value in (("port", port), ("hub port", hub_port), ("proxy API port", proxy_api_port)):
        if value is not None and not (isinstance(value, int) and 0 < value < 65536):
            raise _bad(f"{name} {value!r} is not a TCP port (1-65535)",
                       f"{name} {value!r} は TCP ポート番号（1〜65535）ではありません")
    if authenticator == "dummy" and ip not in ("127.0.0.1", "localhost", "::1"):
        raise _bad("the dummy authenticator lets anybody in: it may only listen on 127.0.0.1; "
                   "use --authenticator pam for a class",
                   "dummy 認証は誰でもログインできるため 127.0.0.1 でのみ使えます。授業では "
                   "--authenticator pam を使ってください")
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise _bad(f"{dest} exists and is not empty: choose a new folder (or --overwrite)",
                   f"{dest} は空ではありません。新しいフォルダーを指定してください（または --overwrite）")
    if course_root is not None:
        course_root = Path(course_root).expanduser().resolve()
        if not course_root.is_dir():
            raise _bad(f"course root {course_root} is not a folder: give the course repository",
                       f"コースのフォルダー {course_root} がありません。コースのリポジトリを指定してください")

    bindir = Path(sys.executable).parent
    singleuser = list(singleuser_command or [str(bindir / "jupyterhub-singleuser")])
    proxy = list(proxy_command or ["configurable-http-proxy"])
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "jupyter").mkdir(exist_ok=True)
    if create_exchange:
        exchange.mkdir(parents=True, exist_ok=True)
        # nbgrader: "the exchange directory must be readable and writable by everyone".
        exchange.chmod(stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO)

    url = f"http://{'localhost' if ip in ('127.0.0.1', '::1') else ip}:{port}/"
    nbgrader_config = dest / "jupyter" / "nbgrader_config.py"
    nbgrader_config.write_text(_NBGRADER_TEMPLATE.format(
        course_id=course_id, exchange=str(exchange), instructors=sorted(instructors),
        course_root=repr(str(course_root)) if course_root else "None"), encoding="utf-8")

    lines = [_HUB_HEAD.format(course_id=course_id)]
    lines.append(f"# Where the hub listens (students open this URL).\n"
                 f"c.JupyterHub.bind_url = {f'http://{ip}:{port}'!r}")
    if hub_port:
        lines.append(f"# The hub's internal API (only the proxy and the users' servers talk to it).\n"
                     f"c.JupyterHub.hub_bind_url = {f'http://127.0.0.1:{hub_port}'!r}")
    lines.append("# configurable-http-proxy (npm): routes /user/NAME/ to each user's JupyterLab.\n"
                 f"c.ConfigurableHTTPProxy.command = {proxy!r}")
    if proxy_api_port:
        lines.append(f"c.ConfigurableHTTPProxy.api_url = {f'http://127.0.0.1:{proxy_api_port}'!r}")
    lines.append("# The hub's own state: its database and the secret that signs login cookies.\n"
                 f"c.JupyterHub.db_url = {'sqlite:///' + str(dest / 'jupyterhub.sqlite')!r}\n"
                 f"c.JupyterHub.cookie_secret_file = {str(dest / 'jupyterhub_cookie_secret')!r}")
    if authenticator == "pam":
        lines.append("# Log in with the server's own accounts (PAM). For a university login use\n"
                     "# an OAuthenticator or LTI authenticator instead (see HUB.md).\n"
                     "c.JupyterHub.authenticator_class = 'pam'")
    else:
        lines.append("# TESTS ONLY: the dummy authenticator accepts any password (or the one below).\n"
                     "c.JupyterHub.authenticator_class = 'dummy'")
        if dummy_password:
            lines.append(f"c.DummyAuthenticator.password = {dummy_password!r}")
    lines.append(f"# Who may log in: the instructors and the class list. Instructors are hub admins.\n"
                 f"c.Authenticator.allowed_users = {set(instructors) | set(students)!r}\n"
                 f"c.Authenticator.admin_users = {set(instructors)!r}\n"
                 f"c.JupyterHub.load_groups = {{'instructors': {{'users': {sorted(instructors)!r}}}, "
                 f"'students': {{'users': {sorted(students)!r}}}}}")
    lines.append(
        "# Each user's JupyterLab runs as that user's OS account, in their home folder: students\n"
        "# cannot read each other's work, and nbgrader's exchange knows who submitted what.\n"
        "c.JupyterHub.spawner_class = 'localprocess'\n"
        f"c.Spawner.cmd = {singleuser!r}\n"
        "c.Spawner.default_url = '/lab'\n"
        "c.Spawner.notebook_dir = '~'\n"
        "# Every server reads the course's nbgrader settings (course id, exchange) from jupyter/;\n"
        "# students' servers also read jupyter-students/, which turns off the instructor tools\n"
        "# (formgrader, Create Assignment) so students never see them.\n"
        f"_INSTRUCTORS = {set(instructors)!r}\n\n\n"
        "def _jupyter_config_path(spawner):\n"
        f"    if spawner.user.name in _INSTRUCTORS:\n"
        f"        return {str(dest / 'jupyter')!r}\n"
        f"    return {str(dest / 'jupyter-students') + os.pathsep + str(dest / 'jupyter')!r}\n\n\n"
        "c.Spawner.environment = {'JUPYTER_CONFIG_PATH': _jupyter_config_path}\n"
        "# Give a slow first start (imports of the scientific stack) time.\n"
        "c.Spawner.start_timeout = 120\n"
        "c.Spawner.http_timeout = 120")
    if api_token_env:
        lines.append(
            "# A service for instructors' scripts (start servers, make tokens). Its token comes\n"
            f"# from ${api_token_env} when the hub starts; without it the service is not created.\n"
            f"_token = os.environ.get({api_token_env!r})\n"
            "if _token:\n"
            "    c.JupyterHub.services = [{'name': 'sscity-course', 'api_token': _token}]\n"
            "    c.JupyterHub.load_roles = [{'name': 'sscity-course', 'services': ['sscity-course'],\n"
            "                                'scopes': ['admin:users', 'admin:servers', 'tokens',\n"
            "                                           'access:servers', 'list:users']}]")
    students_dir = dest / "jupyter-students"
    (students_dir / "labconfig").mkdir(parents=True, exist_ok=True)
    (students_dir / "jupyter_server_config.d").mkdir(exist_ok=True)
    (students_dir / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {name: True for name in STUDENT_HIDDEN_LAB}}, indent=2) + "\n")
    (students_dir / "jupyter_server_config.d" / "sscity-students.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {name: False for name in STUDENT_HIDDEN_SERVER}}},
        indent=2) + "\n")
    jupyterhub_config = dest / "jupyterhub_config.py"
    jupyterhub_config.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    config = HubConfig(dest, jupyterhub_config, nbgrader_config, exchange, url)
    (dest / "README.txt").write_text(_README.format(
        command=" ".join(config.command()), url=url, dest=dest, exchange=exchange,
        course_id=course_id), encoding="utf-8")
    return config


def stage_feedback(course_root, grade_out, module: str) -> list[Path]:
    """Copy ``grade_out/feedback/<student>/<module>.html`` (from ``sscity course grade``) to
    ``course_root/feedback/<student>/<module>/assignment.html`` with the submission's
    ``timestamp.txt`` and ``submission_secret.txt``, where ``nbgrader release_feedback``
    finds them. Returns the pages staged. Run it from the course root's grading of
    ``course_root/submitted`` (what ``nbgrader collect`` wrote)."""
    course_root, grade_out = Path(course_root), Path(grade_out)
    pages = sorted((grade_out / "feedback").glob(f"*/{module}.html"))
    if not pages:
        raise _bad(f"no feedback pages for {module} in {grade_out / 'feedback'}: run "
                   f"`sscity course grade {course_root / 'submitted'} --out {grade_out}` first",
                   f"{grade_out / 'feedback'} に {module} のフィードバックがありません。先に "
                   "`sscity course grade` を実行してください")
    staged = []
    for page in pages:
        student = page.parent.name
        submitted = course_root / "submitted" / student / module
        target = course_root / "feedback" / student / module
        target.mkdir(parents=True, exist_ok=True)
        for name in ("timestamp.txt", "submission_secret.txt"):
            if not (submitted / name).is_file():
                raise _bad(f"{submitted / name} is missing: stage feedback only for work that "
                           "`nbgrader collect` brought in",
                           f"{submitted / name} がありません。`nbgrader collect` で集めた提出にだけ"
                           "フィードバックを返せます")
            shutil.copy2(submitted / name, target / name)
        # nbgrader matches feedback to the submitted notebook of the same name.
        for notebook in sorted(submitted.glob("*.ipynb")) or [submitted / "assignment.ipynb"]:
            if notebook.stem == "assignment":
                shutil.copy2(page, target / "assignment.html")
                staged.append(target / "assignment.html")
    return staged


def read_class_list(path) -> list[str]:
    """User names from a text file: one per line; blank lines and ``#`` comments ignored."""
    path = Path(path)
    if not path.is_file():
        raise _bad(f"class list {path} not found: give a text file with one user name per line",
                   f"名簿 {path} がありません。1 行に 1 人のユーザー名を書いたテキストファイルを"
                   "指定してください")
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


def add_hub_config_parser(course_verbs) -> None:
    """``sscity course hub-config``: add the subcommand to ``sscity course``'s subparsers."""
    hub = course_verbs.add_parser(
        "hub-config", help="write a JupyterHub + nbgrader exchange set-up for the class",
        description="Write jupyterhub_config.py and jupyter/nbgrader_config.py for a class server "
                    "into DEST (see course/sscity/course/HUB.md). / 授業用 JupyterHub と nbgrader の"
                    "設定ファイルを DEST に書きます（HUB.md を参照）。")
    hub.add_argument("dest", help="a new folder for the hub's files, e.g. /srv/hub")
    hub.add_argument("--course-id", required=True, help="nbgrader course id, e.g. sscity-2027")
    hub.add_argument("--exchange", default="/srv/nbgrader/exchange",
                     help="nbgrader's shared exchange folder (default /srv/nbgrader/exchange)")
    hub.add_argument("--instructor", action="append", default=[], required=True,
                     help="an instructor's user name (repeatable)")
    hub.add_argument("--student", action="append", default=[], help="a student's user name (repeatable)")
    hub.add_argument("--student-file", help="class list: one user name per line")
    hub.add_argument("--authenticator", choices=AUTHENTICATORS, default="pam",
                     help="pam: the server's accounts (default); dummy: tests only")
    hub.add_argument("--ip", default="127.0.0.1", help="address to listen on (0.0.0.0 for a class)")
    hub.add_argument("--port", type=int, default=8000, help="port students connect to (default 8000)")
    hub.add_argument("--course-root", help="the course repository (default: this one)")
    hub.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")
    hub.set_defaults(func=cmd_hub_config)


def add_stage_feedback_parser(course_verbs) -> None:
    """``sscity course stage-feedback``: add the subcommand to ``sscity course``'s subparsers."""
    stage = course_verbs.add_parser(
        "stage-feedback", help="put sscity's feedback pages where nbgrader release_feedback finds them",
        description="Copy GRADES/feedback/<student>/MODULE.html into COURSE/feedback/<student>/MODULE/ "
                    "with the collected submission's timestamp and secret; then run `nbgrader "
                    "release_feedback MODULE` and students use Fetch Feedback. / 採点結果のフィードバックを "
                    "nbgrader release_feedback が読む場所に置きます。")
    stage.add_argument("module", metavar="MODULE")
    stage.add_argument("--grades", required=True, help="the --out folder of `sscity course grade`")
    stage.add_argument("--course-dir", default=".",
                       help="the folder where `nbgrader collect` wrote submitted/ (default: here)")
    stage.set_defaults(func=cmd_stage_feedback)


def cmd_stage_feedback(args) -> int:
    """Run ``sscity course stage-feedback`` from parsed arguments."""
    staged = stage_feedback(args.course_dir, args.grades, args.module)
    print(f"Staged feedback for {len(staged)} student(s); now run `nbgrader release_feedback "
          f"{args.module}`. / {len(staged)} 人分のフィードバックを置きました。続けて "
          f"`nbgrader release_feedback {args.module}` を実行してください。")
    return 0


def cmd_hub_config(args) -> int:
    """Run ``sscity course hub-config`` from parsed arguments."""
    from .notebooks import course_root

    students = list(args.student) + (read_class_list(args.student_file) if args.student_file else [])
    root = Path(args.course_root) if args.course_root else course_root(
        Path(args.root) if getattr(args, "root", None) else None)
    config = write_hub_config(args.dest, course_id=args.course_id, exchange=args.exchange,
                              instructors=args.instructor, students=students, port=args.port,
                              authenticator=args.authenticator, course_root=root, ip=args.ip,
                              overwrite=args.overwrite)
    print(f"Wrote {config.jupyterhub_config} and {config.nbgrader_config} "
          f"({len(students)} students). / 設定ファイルを書きました（学生 {len(students)} 人）。")
    print(f"Start as root / root で起動: {' '.join(config.command())}")
    print(f"Then open / 開く: {config.url}")
    return 0


_HUB_HEAD = '''"""JupyterHub for the course {course_id} -- written by `sscity course hub-config`.

Start it as root (LocalProcessSpawner starts each user's JupyterLab as that user):
    jupyterhub -f jupyterhub_config.py
Settings: https://jupyterhub.readthedocs.io/en/stable/reference/config-reference.html
"""

import os

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)'''

_NBGRADER_TEMPLATE = '''"""nbgrader settings for everybody on the hub (by `sscity course hub-config`).

Every user's JupyterLab finds this file through JUPYTER_CONFIG_PATH (set in
jupyterhub_config.py); on a server of your own you may copy it to /etc/jupyter/.
Settings: https://nbgrader.readthedocs.io/en/stable/configuration/config_options.html
"""

import getpass
import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

# The course: students' Assignment List shows the assignments of this course id.
c.CourseDirectory.course_id = {course_id!r}

# nbgrader's exchange: a folder every user can read and write (release, fetch, submit,
# collect, feedback all go through it). On several machines it must be a shared volume.
c.Exchange.root = {exchange!r}

# Instructors grade in the course repository (solutions/, modules/, submitted/ ...).
_INSTRUCTORS = {instructors!r}
_COURSE_ROOT = {course_root}
if _COURSE_ROOT and (os.environ.get("JUPYTERHUB_USER") or getpass.getuser()) in _INSTRUCTORS:
    c.CourseDirectory.root = _COURSE_ROOT
'''

_README = """Class server for the course {course_id} / 授業用サーバー（コース {course_id}）

Start (as root) / 起動（root で）:
    {command}
Open / 開く: {url}
Exchange / 交換フォルダー: {exchange}
Files / ファイル: {dest}/jupyterhub_config.py, {dest}/jupyter/nbgrader_config.py
The guide / 手引き: course/sscity/course/HUB.md
"""
