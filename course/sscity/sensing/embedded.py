"""Tree models exported to C with emlearn, compiled, run, and measured.

The edge device runs the classifier, not Python. This module turns a fitted
scikit-learn tree model (``DecisionTreeClassifier``, ``RandomForestClassifier``,
``ExtraTreesClassifier``) into C with emlearn [1]_, compiles it with the system C
compiler into a small harness program, runs that program on feature rows and reads
back its predictions, so that a learner can check

- **agreement**: the fraction of rows where the compiled C predicts the same class as
  scikit-learn's ``predict``;
- **footprint**: the bytes the model costs on the device, read from the object file
  with binutils ``size`` [2]_: flash ≈ ``.text + .rodata + .data`` (code, constants
  and initial values of variables are stored in flash), RAM ≈ ``.data + .bss``
  (variables live in RAM). With ``arm-none-eabi-gcc`` on ``PATH`` the same C is
  cross-compiled for a Cortex-M4 (``-mcpu=cortex-m4 -mthumb -Os``) and measured with
  ``arm-none-eabi-size``.

Without a C compiler :class:`CompilerNotFound` is raised with a message in English
and Japanese; a notebook can catch it and go on with the other steps.

Two choices here keep C and scikit-learn in agreement:

- features are ``float`` in C (``method="inline"``): emlearn's default ``int16_t``
  truncates features and thresholds to integers, so features below 1 lose all
  their information unless they are scaled first;
- forests vote with class proportions (``leaf_bits=8``), like scikit-learn's
  ``predict`` which averages the trees' probabilities; emlearn's default of one vote
  per tree (hard majority) can pick another class when trees disagree.

References
----------
.. [1] J. Nordby, emlearn: Machine Learning inference engine for Microcontrollers and
   Embedded Devices, https://github.com/emlearn/emlearn (MIT licence), version 0.23;
   ``emlearn.convert`` and ``emlearn.includedir``.
.. [2] GNU Binutils, "size": https://sourceware.org/binutils/docs/binutils/size.html
   (``-A`` lists every section and its size in bytes).

Examples
--------
>>> from sklearn.datasets import make_classification
>>> from sklearn.ensemble import RandomForestClassifier
>>> X, y = make_classification(n_samples=400, n_features=6, random_state=0)
>>> model = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(X, y)
>>> agreement(model, X) >= 0.99                                  # doctest: +SKIP
True
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "CompilerNotFound",
    "SUPPORTED_MODELS",
    "find_compiler",
    "export_c",
    "compile_model",
    "compile_and_predict",
    "agreement",
    "footprint",
    "cross_compile_arm",
    "predict_with_source",
    "source_footprint",
]

SUPPORTED_MODELS = ("DecisionTreeClassifier", "RandomForestClassifier", "ExtraTreesClassifier")

# Flags for the object whose size is reported: -Os is what firmware builds use, and one
# section per function/variable lets the linker drop what is unused (as on a device).
HOST_CFLAGS = ("-std=c99", "-Os", "-ffunction-sections", "-fdata-sections")
ARM_CFLAGS = ("-std=c99", "-mcpu=cortex-m4", "-mthumb", "-Os",
              "-ffunction-sections", "-fdata-sections")

_NO_COMPILER = (
    "No C compiler found: install gcc (Debian: apt-get install gcc; macOS: xcode-select "
    "--install; Windows: use WSL) or set CC to a compiler on PATH. The rest of the notebook "
    "still runs without it. / C コンパイラが見つかりません: gcc をインストールしてください"
    "（Debian: apt-get install gcc、macOS: xcode-select --install、Windows: WSL を使用）。"
    "または CC に PATH 上のコンパイラを設定してください。ノートブックの他の部分はそのまま動きます。"
)


class CompilerNotFound(RuntimeError):
    """No C compiler (or no cross compiler) on ``PATH``; the message says how to install one."""


def find_compiler(toolchain: str = "host") -> str:
    """Return the path of the C compiler for ``toolchain``.

    Parameters
    ----------
    toolchain : {"host", "arm"}
        ``"host"``: ``$CC`` if set, else ``cc``, ``gcc`` or ``clang`` on ``PATH``.
        ``"arm"``: ``arm-none-eabi-gcc`` (Debian package ``gcc-arm-none-eabi``).

    Raises
    ------
    CompilerNotFound
        When none is found (bilingual message with the install command).
    """
    _check_toolchain(toolchain)
    if toolchain == "arm":
        found = shutil.which("arm-none-eabi-gcc")
        if found is None:
            raise CompilerNotFound(
                "arm-none-eabi-gcc not found: install it (Debian: apt-get install "
                "gcc-arm-none-eabi) to measure the Cortex-M4 footprint. / arm-none-eabi-gcc "
                "が見つかりません: Cortex-M4 のサイズを測るにはインストールしてください"
                "（Debian: apt-get install gcc-arm-none-eabi）。")
        return found
    candidates = [os.environ["CC"]] if os.environ.get("CC") else []
    for name in candidates + ["cc", "gcc", "clang"]:
        found = shutil.which(name)
        if found is not None:
            return found
    raise CompilerNotFound(_NO_COMPILER)


def _check_toolchain(toolchain):
    if toolchain not in ("host", "arm"):
        raise ValueError(f"toolchain must be 'host' or 'arm', got {toolchain!r}. / toolchain は "
                         f"'host' か 'arm' にしてください（{toolchain!r} が渡されました）。")


def _check_model(model):
    kind = type(model).__name__
    if kind not in SUPPORTED_MODELS:
        raise TypeError(
            f"{kind} cannot be exported here; use one of {', '.join(SUPPORTED_MODELS)}. / "
            f"{kind} はここでは C に変換できません。{', '.join(SUPPORTED_MODELS)} のいずれかを"
            "使ってください。")
    if not hasattr(model, "n_features_in_"):
        raise ValueError(f"{kind} is not fitted: call model.fit(X, y) first. / {kind} は学習"
                         "されていません。先に model.fit(X, y) を呼んでください。")


def _check_name(name):
    if not (isinstance(name, str) and name.isidentifier() and name.isascii()):
        raise ValueError(f"name must be a C identifier such as 'surface_model', got {name!r}. / "
                         f"name は 'surface_model' のような C の識別子にしてください（{name!r}）。")


def _check_X(model, X):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != model.n_features_in_:
        raise ValueError(
            f"X must have shape (n_samples, {model.n_features_in_}), got {X.shape}. / X の形は "
            f"(サンプル数, {model.n_features_in_}) にしてください（{X.shape} が渡されました）。")
    if len(X) == 0 or not np.all(np.isfinite(X)):
        raise ValueError("X must be non-empty and contain no NaN or inf. / X は空でなく、"
                         "NaN や inf を含まないようにしてください。")
    return X


def export_c(model, name: str = "model", folder=None) -> Path:
    """Write ``model`` as a C file ``<folder>/<name>.c`` and return its path.

    The file defines ``int32_t <name>_predict(const float *features, int32_t n_features)``
    returning the class index (position in ``model.classes_``), and
    ``<name>_predict_proba``. It includes only ``<stdint.h>``.

    Parameters
    ----------
    model : DecisionTreeClassifier, RandomForestClassifier or ExtraTreesClassifier
        Fitted model.
    name : str
        C identifier used as prefix of the generated functions.
    folder : path-like, optional
        Where to write; a new temporary folder by default.

    Returns
    -------
    pathlib.Path
    """
    import emlearn

    _check_model(model)
    _check_name(name)
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="sscity-c-"))
    folder.mkdir(parents=True, exist_ok=True)
    # float features and proportion voting: see the module docstring for why.
    converted = emlearn.convert(model, method="inline", dtype="float", leaf_bits=8)
    code = converted.save(name=name, include_proba=True)
    path = folder / f"{name}.c"
    path.write_text(code, encoding="utf-8")
    return path


_HARNESS = r"""
/* Reads rows of features (FEATURE, native byte order) from a file and prints one
   predicted class index per line. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

int32_t NAME_predict(const FEATURE *features, int32_t features_length);

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s rows n_features\n", argv[0]); return 2; }
    const int n = atoi(argv[2]);
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL || n <= 0) { fprintf(stderr, "cannot read %s\n", argv[1]); return 2; }
    FEATURE *row = malloc(sizeof(FEATURE) * (size_t)n);
    while (fread(row, sizeof(FEATURE), (size_t)n, f) == (size_t)n) {
        printf("%d\n", (int)NAME_predict(row, n));
    }
    free(row);
    fclose(f);
    return 0;
}
"""


def _run(command, what):
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(map(str, command))}):\n{result.stderr}\n"
                           f"/ {what} に失敗しました。上のメッセージを確認してください。")
    return result.stdout


def compile_model(model, name: str = "model", folder=None, toolchain: str = "host") -> Path:
    """Export ``model`` to C and compile it (no linking) to ``<folder>/<name>.o``.

    Host objects use ``-Os -ffunction-sections -fdata-sections``; ``toolchain="arm"``
    adds ``-mcpu=cortex-m4 -mthumb`` with ``arm-none-eabi-gcc``.

    Returns
    -------
    pathlib.Path
        The object file, ready for :func:`footprint`.

    Raises
    ------
    CompilerNotFound
        When the compiler for ``toolchain`` is missing.
    """
    _check_toolchain(toolchain)
    compiler = find_compiler(toolchain)
    source = export_c(model, name, folder)
    suffix = ".o" if toolchain == "host" else ".cortex-m4.o"
    obj = source.with_name(name + suffix)
    flags = HOST_CFLAGS if toolchain == "host" else ARM_CFLAGS
    _run([compiler, *flags, "-c", source, "-o", obj], f"Compiling {source.name}")
    return obj


def compile_and_predict(model, X, folder=None, name: str = "model") -> np.ndarray:
    """Predict ``X`` with ``model`` compiled to C and run as a program.

    The model object (see :func:`compile_model`) is linked with a harness that reads the
    rows as float32 and prints one class index per line; indices are mapped back to
    ``model.classes_`` so the result compares directly with ``model.predict(X)``.

    Parameters
    ----------
    model : fitted tree classifier (see :data:`SUPPORTED_MODELS`)
    X : array-like of shape (n_samples, n_features)
    folder : path-like, optional
        Build folder; a temporary folder, removed afterwards, by default.
    name : str
        C prefix of the model functions.

    Returns
    -------
    numpy.ndarray of shape (n_samples,)

    Raises
    ------
    CompilerNotFound
        No C compiler on ``PATH`` (bilingual message).
    """
    _check_model(model)
    _check_name(name)
    X = _check_X(model, X)
    compiler = find_compiler("host")
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="sscity-c-") as tmp:
            return _compile_and_predict(model, X, Path(tmp), name, compiler)
    return _compile_and_predict(model, X, Path(folder), name, compiler)


def _compile_and_predict(model, X, folder, name, compiler):
    obj = compile_model(model, name, folder)
    harness = folder / f"{name}_harness.c"
    harness.write_text(_HARNESS.replace("NAME", name).replace("FEATURE", "float"), encoding="utf-8")
    program = folder / f"{name}_harness"
    _run([compiler, "-std=c99", "-O2", harness, obj, "-o", program], "Linking the test program")
    rows = folder / f"{name}_rows.f32"
    # scikit-learn's trees also compare float32 features, so the C sees the same numbers.
    np.ascontiguousarray(X, dtype=np.float32).tofile(rows)
    out = _run([program, rows, model.n_features_in_], "Running the test program")
    indices = np.array(out.split(), dtype=np.int64)
    if len(indices) != len(X):
        raise RuntimeError(f"The C program printed {len(indices)} predictions for {len(X)} rows. "
                           f"/ C プログラムの予測数 {len(indices)} が行数 {len(X)} と合いません。")
    return np.asarray(model.classes_)[indices]


def agreement(model, X, folder=None) -> float:
    """Fraction of rows of ``X`` where compiled C and ``model.predict`` give the same class.

    Use held-out rows (not the training set) so the check covers inputs the trees
    were not fitted on. Raises :class:`CompilerNotFound` without a C compiler.
    """
    X = _check_X(model, X) if hasattr(model, "n_features_in_") else X
    c_pred = compile_and_predict(model, X, folder=folder)
    return float(np.mean(c_pred == model.predict(X)))


def cross_compile_arm(model, name: str = "model", folder=None) -> dict:
    """Compile ``model`` for a Cortex-M4 and return its :func:`footprint`.

    Raises :class:`CompilerNotFound` when ``arm-none-eabi-gcc`` is missing.
    """
    return footprint(compile_model(model, name, folder, toolchain="arm"), toolchain="arm")


# --- from C source text (what a device is actually flashed with) -------------------------

_PREDICT = re.compile(r"int32_t\s+([A-Za-z_]\w*)_predict\s*\(\s*const\s+(float|int16_t)\s*\*")


def _check_source(source) -> tuple[str, str]:
    """The model's C prefix and feature type, read from the source's predict function."""
    if isinstance(source, os.PathLike):
        source = Path(source).read_text(encoding="utf-8")
    if not isinstance(source, str) or not source.strip():
        raise TypeError("source must be the C text of an exported model (a str), e.g. "
                        "embedded.export_c(model, 'surface').read_text(). / source には書き出した"
                        "モデルの C のテキスト（str）を渡してください（例："
                        "embedded.export_c(model, 'surface').read_text()）。")
    found = _PREDICT.findall(source)
    names = {name for name, _ in found}
    if len(names) != 1:
        raise ValueError(
            "The C source should define exactly one '<name>_predict(const float *features, ...)' "
            f"function, as emlearn writes it; found {sorted(names) or 'none'}. / C のソースには、emlearn が"
            "書き出す '<name>_predict(const float *features, ...)' 関数がちょうど一つ必要です。"
        )
    return found[0]


def _compile_source(source: str, name: str, folder: Path, toolchain: str) -> Path:
    compiler = find_compiler(toolchain)
    path = folder / f"{name}.c"
    path.write_text(source, encoding="utf-8")
    obj = path.with_name(name + (".o" if toolchain == "host" else ".cortex-m4.o"))
    _run([compiler, *(HOST_CFLAGS if toolchain == "host" else ARM_CFLAGS), "-c", path, "-o", obj],
         f"Compiling {path.name}")
    return obj


def predict_with_source(source, X, classes=None) -> np.ndarray:
    """Compile C source text of an exported model, run it on ``X`` and return its predictions.

    Unlike :func:`compile_and_predict`, nothing here needs the Python model: this is how
    to check the C a device is flashed with against a reference (a grader, a colleague).
    The prefix of the model's functions is read from the source. Features reach the C as
    the type its predict function declares: ``float`` (as :func:`export_c` writes), or
    ``int16_t`` (emlearn's default), in which case they are truncated to integers as a
    device given int16 readings would see them.

    Parameters
    ----------
    source : str or path-like
        The C text, e.g. ``export_c(model, "surface").read_text()``.
    X : array-like of shape (n_samples, n_features)
    classes : sequence, optional
        Labels for the class indices (a model's ``classes_``: sorted labels); without it,
        the indices are returned.

    Returns
    -------
    numpy.ndarray of shape (n_samples,)
    """
    name, feature_type = _check_source(source)
    if isinstance(source, os.PathLike):
        source = Path(source).read_text(encoding="utf-8")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0 or not np.isfinite(X).all():
        raise ValueError(f"X must be a non-empty 2-D array of finite numbers; got shape {X.shape}. "
                         f"/ X は有限の数の空でない2次元配列にしてください（形 {X.shape}）。")
    compiler = find_compiler("host")
    with tempfile.TemporaryDirectory(prefix="sscity-c-") as tmp:
        folder = Path(tmp)
        obj = _compile_source(source, name, folder, "host")
        c_type = "float" if feature_type == "float" else "int16_t"
        harness = folder / f"{name}_harness.c"
        harness.write_text(_HARNESS.replace("NAME", name).replace("FEATURE", c_type), encoding="utf-8")
        program = folder / f"{name}_harness"
        _run([compiler, "-std=c99", "-O2", harness, obj, "-o", program], "Linking the test program")
        rows = folder / f"{name}_rows.bin"
        if feature_type == "float":
            np.ascontiguousarray(X, dtype=np.float32).tofile(rows)
        else:
            np.ascontiguousarray(np.trunc(np.clip(X, -32768, 32767)), dtype=np.int16).tofile(rows)
        out = _run([program, rows, X.shape[1]], "Running the test program")
    indices = np.array(out.split(), dtype=np.int64)
    if len(indices) != len(X):
        raise RuntimeError(f"The C program printed {len(indices)} predictions for {len(X)} rows. "
                           f"/ C プログラムの予測数 {len(indices)} が行数 {len(X)} と合いません。")
    if classes is None:
        return indices
    classes = np.asarray(classes)
    if indices.size and (indices.min() < 0 or indices.max() >= len(classes)):
        raise ValueError(f"The C model predicts class index {int(indices.max())} but {len(classes)} "
                         f"classes were given. / C のモデルがクラス番号 {int(indices.max())} を"
                         f"予測しましたが、与えられたクラスは {len(classes)} 個です。")
    return classes[indices]


def source_footprint(source, toolchain: str = "host") -> dict:
    """Compile C source text of an exported model and return its :func:`footprint`."""
    _check_toolchain(toolchain)
    name, _ = _check_source(source)
    if isinstance(source, os.PathLike):
        source = Path(source).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="sscity-c-") as tmp:
        return footprint(_compile_source(source, name, Path(tmp), toolchain), toolchain=toolchain)


# --- sizes -------------------------------------------------------------------------------

def _section_kind(section):
    """Map a section name to text/rodata/data/bss (None: not stored on the device)."""
    for prefix, kind in ((".text", "text"), (".rodata", "rodata"), (".srodata", "rodata"),
                         (".data", "data"), (".sdata", "data"),
                         (".bss", "bss"), (".sbss", "bss"), ("COMMON", "bss")):
        if section == prefix or section.startswith(prefix + "."):
            return kind
    # .comment, .note.*, .ARM.attributes, debug and unwind tables (.eh_frame) are left out:
    # they describe the object, they are not the model a device would run.
    return None


def _sections_from_size_tool(size_tool, object_file):
    out = _run([size_tool, "-A", object_file], "size -A")
    sections = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit() and parts[0] != "Total":
            sections.append((parts[0], int(parts[1])))
    return sections


def _sections_from_elf(object_file):
    """Section names and sizes read from the ELF header (fallback when ``size`` is missing)."""
    data = Path(object_file).read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{object_file} is not an ELF object file. / {object_file} は ELF の"
                         "オブジェクトファイルではありません。")
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x2E)

    def header(i):
        base = shoff + i * shentsize
        if is64:
            name, _type, _flags, _addr, offset, size = struct.unpack_from(end + "IIQQQQ", data, base)
        else:
            name, _type, _flags, _addr, offset, size = struct.unpack_from(end + "IIIIII", data, base)
        return name, offset, size

    _, names_offset, _ = header(shstrndx)
    sections = []
    for i in range(1, shnum):
        name_index, _, size = header(i)
        start = names_offset + name_index
        name = data[start:data.index(b"\0", start)].decode("ascii", "replace")
        sections.append((name, size))
    return sections


def footprint(object_file, toolchain: str = "host") -> dict:
    """Bytes of code and data in a compiled object file.

    Section sizes come from ``size -A`` (``arm-none-eabi-size -A`` for
    ``toolchain="arm"``) [2]_, or from the ELF section headers when the tool is
    missing. Sections are grouped by name: ``.text*`` code, ``.rodata*`` constants,
    ``.data*`` initialised variables, ``.bss*`` zeroed variables.

    Parameters
    ----------
    object_file : path-like
        An ``.o`` file, e.g. from :func:`compile_model`.
    toolchain : {"host", "arm"}

    Returns
    -------
    dict
        ``flash`` (text + rodata + data), ``ram`` (data + bss), ``text``, ``rodata``,
        ``data``, ``bss`` in bytes, ``object_bytes`` (file size, including symbols and
        metadata) and ``tool`` (what was used to read the sections).
    """
    _check_toolchain(toolchain)
    object_file = Path(object_file)
    if not object_file.is_file():
        raise FileNotFoundError(f"{object_file} does not exist: compile the model first. / "
                                f"{object_file} がありません。先にモデルをコンパイルしてください。")
    size_tool = shutil.which("size" if toolchain == "host" else "arm-none-eabi-size")
    if size_tool is not None:
        sections, tool = _sections_from_size_tool(size_tool, object_file), Path(size_tool).name
    else:
        sections, tool = _sections_from_elf(object_file), "elf-headers"
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for section, size in sections:
        kind = _section_kind(section)
        if kind is not None:
            sizes[kind] += size
    return {
        "flash": sizes["text"] + sizes["rodata"] + sizes["data"],
        "ram": sizes["data"] + sizes["bss"],
        **sizes,
        "object_bytes": object_file.stat().st_size,
        "tool": tool,
    }
