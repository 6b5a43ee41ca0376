"""Export a fine-tuned model for serving, with the manifest that names it.

- merged Hugging Face safetensors + tokenizer (TGI, vLLM, in-process transformers);
- GGUF (llama.cpp) via llama.cpp's own ``convert_hf_to_gguf.py``, which ships in the llama-cpp-python source
  distribution (:func:`fetch_converter` gets it with pip);
- ``manifest.json``: base model, data provenance, hyper-parameters, git revision, library versions, file hashes.
  Its ``version`` is the model version carried into FHIR Provenance and the labeler info.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path


from training.sft import RUN_FILE

MANIFEST = "manifest.json"
CONVERTER_ENV = "RADLABEL_LLAMA_CPP_DIR"
DEFAULT_CONVERTER_CACHE = Path.home() / ".cache" / "radlabel" / "llama.cpp"


class ExportError(RuntimeError):
    """Export could not produce the requested artefact (the message says which step and why)."""


def git_revision(path: Path | None = None) -> str:
    cwd = path or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "gguf"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def build_manifest(model_dir: Path, run: dict, step: int | None = None, extra: dict | None = None) -> dict:
    files = {p.name: _sha256(p) for p in sorted(model_dir.iterdir())
             if p.is_file() and (p.suffix in (".safetensors", ".gguf") or p.name == "tokenizer.json")}
    # The GGUF is derived from the safetensors, so only they name the version (same before and after export).
    weights = "".join(v for k, v in files.items() if k.endswith(".safetensors"))
    base_info = run.get("base", {})
    # A continued run names its root base model, not the local directory it started from.
    base = base_info.get("parent_base") or base_info.get("base", "unknown")
    short = Path(str(base)).name.replace(".gguf", "").replace("/", "-")
    # Content-addressed: the same weights always get the same version, retraining always a new one.
    version = f"radlabel-llm-{short}-{hashlib.sha256(weights.encode()).hexdigest()[:12]}"
    manifest = {
        "version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        # What the model was trained with (runs written before run.json recorded it were all version 1).
        "prompt_version": str(run.get("prompt_version", "1")),
        "base_model": run.get("base", {}),
        "data": run.get("data", {}),
        "hyperparameters": run.get("hyperparameters", {}),
        "step": step,
        "git_revision": git_revision(),
        "libraries": _versions(),
        "files": files,
    }
    manifest.update(extra or {})
    return manifest


def write_manifest(model_dir: Path, run: dict, step: int | None = None, extra: dict | None = None) -> dict:
    manifest = build_manifest(model_dir, run, step, extra)
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def read_manifest(model_dir: Path) -> dict:
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise ExportError(f"{model_dir} has no {MANIFEST}; export it with `radlabel export`")
    return json.loads(path.read_text(encoding="utf-8"))


def save_model(model, tokenizer, model_dir: Path, run: dict, step: int | None = None) -> dict:
    """Merged safetensors + tokenizer + manifest in ``model_dir``."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(model_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(model_dir))
    return write_manifest(model_dir, run, step)


def _find_run(path: Path) -> dict:
    for candidate in (path / RUN_FILE, path.parent / RUN_FILE, path / MANIFEST):
        if candidate.is_file():
            data = json.loads(candidate.read_text(encoding="utf-8"))
            if candidate.name == MANIFEST:
                run = {k: data.get(k2, {}) for k, k2 in
                       (("base", "base_model"), ("data", "data"), ("hyperparameters", "hyperparameters"))}
                return {**run, "prompt_version": data.get("prompt_version", "1")}
            return data
    raise ExportError(f"no {RUN_FILE} in {path} or its parent, nor a {MANIFEST}: cannot say what this model is")


def load_trained(path: Path):
    """A training output or checkpoint as (model, tokenizer); LoRA checkpoints are merged onto their base."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.models import load_base

    path = Path(path)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        run = _find_run(path)
        base_info = run.get("base", {})
        loaded = load_base(base_info.get("path") or base_info.get("base"))
        model = PeftModel.from_pretrained(loaded.model, str(path)).merge_and_unload()
        return model, loaded.tokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return AutoModelForCausalLM.from_pretrained(str(path)), tokenizer


def fetch_converter(cache_dir: Path = DEFAULT_CONVERTER_CACHE) -> Path:
    """llama.cpp's converter from the llama-cpp-python sdist (``pip download --no-binary``), unpacked once."""
    script = cache_dir / "convert_hf_to_gguf.py"
    if script.is_file() and (cache_dir / "conversion").is_dir():
        return cache_dir
    download = cache_dir.parent / "sdist"
    download.mkdir(parents=True, exist_ok=True)
    if not list(download.glob("llama_cpp_python-*.tar.gz")):
        # The converter must match the llama.cpp that will load the GGUF: take the installed version's sdist.
        try:
            from importlib.metadata import version

            requirement = f"llama-cpp-python=={version('llama-cpp-python')}"
        except Exception:  # not installed: the newest sdist
            requirement = "llama-cpp-python"
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                               requirement, "-d", str(download)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ExportError(f"pip download of the llama-cpp-python sdist failed: {proc.stderr.strip()[-400:]}")
    archive = sorted(download.glob("llama_cpp_python-*.tar.gz"))[-1]
    with tarfile.open(archive) as tar:
        root = tar.getnames()[0].split("/")[0]
        prefix = f"{root}/vendor/llama.cpp/"
        # The script imports its model tables from conversion/ and the gguf-py beside it.
        wanted = (prefix + "conversion/", prefix + "gguf-py/")
        members = [m for m in tar.getmembers() if m.name == prefix + "convert_hf_to_gguf.py" or m.name.startswith(wanted)]
        if not members:
            raise ExportError(f"{archive.name} holds no vendor/llama.cpp/convert_hf_to_gguf.py")
        for m in members:
            m.name = m.name[len(prefix):]
        cache_dir.mkdir(parents=True, exist_ok=True)
        tar.extractall(cache_dir, members=members, filter="data")
    return cache_dir


def find_converter() -> Path:
    env = os.environ.get(CONVERTER_ENV)
    if env:
        if not (Path(env) / "convert_hf_to_gguf.py").is_file():
            raise ExportError(f"{CONVERTER_ENV}={env} has no convert_hf_to_gguf.py")
        return Path(env)
    return fetch_converter()


def convert_to_gguf(model_dir: Path, out_file: Path, outtype: str = "f16", converter_dir: Path | None = None) -> Path:
    converter_dir = converter_dir or find_converter()
    env = dict(os.environ)
    # The converter must use the gguf-py that ships beside it (it tracks the script's tensor/arch tables).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(converter_dir / "gguf-py"), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(converter_dir / "convert_hf_to_gguf.py"), str(model_dir),
                           "--outfile", str(out_file), "--outtype", outtype], capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not out_file.is_file():
        raise ExportError(f"convert_hf_to_gguf.py failed (rc={proc.returncode}): {proc.stderr.strip()[-800:]}")
    return out_file


def export(source: Path, out_dir: Path, gguf: bool = True, outtype: str = "f16") -> dict:
    """Export a training output (``.../model``) or checkpoint (``.../checkpoint-N``) to ``out_dir``."""
    source, out_dir = Path(source), Path(out_dir)
    run = _find_run(source)
    model, tokenizer = load_trained(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    for extra_dir in ("retrieval",):
        for where in (source / extra_dir, source.parent / extra_dir):
            if where.is_dir():
                shutil.copytree(where, out_dir / extra_dir, dirs_exist_ok=True)
                break
    step = None
    state = source / "trainer_state.json"
    if state.is_file():
        step = json.loads(state.read_text(encoding="utf-8")).get("global_step")
    elif (source / MANIFEST).is_file():
        step = read_manifest(source).get("step")
    extra = {}
    if gguf:
        gguf_file = out_dir / f"model-{outtype}.gguf"
        convert_to_gguf(out_dir, gguf_file, outtype)
        extra["gguf"] = gguf_file.name
    manifest = write_manifest(out_dir, run, step, extra)
    _make_readable(out_dir)
    return manifest


def _make_readable(out_dir: Path) -> None:
    """An export is read by another user: the model server's or the radlabel container's (uid 10001), mounted
    read-only. safetensors files come out of save_pretrained with mode 0600 (written through a private temporary
    file), which that user cannot open; give every file and directory the read bits the umask allows."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [out_dir, *out_dir.rglob("*")]:
        wanted = (0o755 if path.is_dir() else 0o644) & ~umask
        os.chmod(path, path.stat().st_mode | wanted)
