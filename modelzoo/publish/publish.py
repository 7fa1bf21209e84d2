"""``modelzoo publish``: a zoo as a self-describing folder or archive that others verify and load.

The published folder holds the store files (manifest, both tables, the listed shards: byte for
byte), ``spec.yaml`` (the resolved spec), ``report/`` (PNG + Markdown), ``README.md`` (the zoo
card), ``croissant.json``, the citation when given, and ``SHA256SUMS`` over every file. It is built
under a temporary name beside the target, verified as a zoo, then renamed (or packed into a
``.tar.gz`` / ``.tar.zst`` written under a temporary name and renamed): a failed publish leaves
nothing behind. A damaged zoo, or one with a generate run not yet committed, is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import yaml

from ..errors import ModelZooError
from ..store import format as fmt
from ..store.published import SUMS_FILE, resolve_zoo, write_sums
from ..store.verify import verify_zoo
from .card import card, license_url
from .croissant import croissant
from .report import make_report

ARCHIVES = {"tar.gz": ".tar.gz", "tar.zst": ".tar.zst"}


def publish_zoo(
    source: str | Path,
    out: str | Path,
    license_id: str = "cc-by-4.0",
    citation: str | Path | None = None,
    archive: str | None = None,
    url: str | None = None,
) -> Path:
    """Publish the zoo ``source`` as the folder ``out`` (or ``out`` + ``.tar.gz``/``.tar.zst``
    with ``archive``); returns the path written."""
    source, out = Path(source), Path(out)
    licence = license_url(license_id)
    if archive is not None and archive not in ARCHIVES:
        raise ModelZooError(
            f"--archive: unknown format {archive!r}; choose one of: {', '.join(ARCHIVES)}"
        )
    citation_text = None
    if citation is not None:
        try:
            citation_text = Path(citation).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ModelZooError(f"{citation}: --citation: cannot read the file ({error})") from None
    for name in ARCHIVES.values():
        out = Path(str(out).removesuffix(name)) if str(out).endswith(name) else out
    target = out.with_name(out.name + ARCHIVES[archive]) if archive else out
    if target.exists():
        raise ModelZooError(f"{target}: already exists; choose another --out or delete it")
    folder = resolve_zoo(source)
    if folder.is_dir() and (
        out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents
    ):
        raise ModelZooError(f"--out {out}: inside the zoo folder {folder}; choose a folder outside")
    report = verify_zoo(folder)
    if not report.ok:
        raise ModelZooError(f"{source}: zoo is damaged ({report.problems[0]}); run `modelzoo "
                            "verify` and fix it before publishing")  # fmt: skip
    pending = [n for n in report.notes if "not committed" in n]
    if pending:
        raise ModelZooError(f"{source}: {pending[0]}; finish `modelzoo generate` before publishing")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{os.getpid()}{fmt.TMP_SUFFIX}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _fill(folder, staging, license_id, licence, citation, citation_text, url, out.name)
        check = verify_zoo(staging)
        if not check.ok:  # the source changed while it was copied
            raise ModelZooError(f"{source}: changed while publishing ({check.problems[0]}); retry")
        if archive is None:
            os.rename(staging, target)
        else:
            _pack(staging, target, archive, out.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _fill(source: Path, staging: Path, license_id: str, licence: str, citation: Path | None,
          citation_text: str | None, url: str | None, name: str) -> None:  # fmt: skip
    from ..zoo import open_zoo

    manifest = json.loads((source / fmt.MANIFEST).read_text(encoding="utf-8"))
    (staging / fmt.SHARD_DIR).mkdir(parents=True)
    for relative in [fmt.MODELS_TABLE, fmt.METRICS_TABLE, *(s["path"] for s in manifest["shards"])]:
        shutil.copyfile(fmt.safe_member(source, relative), staging / relative)
    (staging / fmt.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (staging / "spec.yaml").write_text(yaml.safe_dump(manifest["spec"], sort_keys=False),
                                       encoding="utf-8")  # fmt: skip
    if citation_text is not None and citation is not None:
        (staging / f"CITATION{Path(citation).suffix}").write_text(citation_text, encoding="utf-8")
    with open_zoo(staging) as zoo:
        make_report(zoo, staging / "report")
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        files += ["README.md", "croissant.json", SUMS_FILE]
        text = card(zoo, license_id, citation_text, files, name)
    (staging / "README.md").write_text(text, encoding="utf-8")
    description = (f"A model zoo of {manifest['counts'].get('done', '?')} "
                   f"{manifest['architecture']['name']} networks trained on "
                   f"{manifest['dataset']['name']}, with weights and metrics at every stored "
                   "epoch (modelzoo store format).")  # fmt: skip
    info = {"description": description, "license_url": licence, "url": url,
            "tags": ["model-zoo", "weight-space-learning", manifest["dataset"]["name"]],
            "citation": citation_text}  # fmt: skip
    document = croissant(staging, manifest, info)
    (staging / "croissant.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    write_sums(staging)


def _reset(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def _pack(staging: Path, target: Path, archive: str, name: str) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}{fmt.TMP_SUFFIX}")
    try:
        if archive == "tar.gz":
            with tarfile.open(tmp, "w:gz") as tar:
                tar.add(staging, arcname=name, filter=_reset)
        else:
            try:
                import zstandard
            except ImportError:
                raise ModelZooError("--archive tar.zst needs the zstandard package "
                                    "(pip install zstandard); or use --archive tar.gz") from None  # fmt: skip
            compressor = zstandard.ZstdCompressor(level=10)
            with (
                open(tmp, "wb") as raw,
                compressor.stream_writer(raw) as stream,
                tarfile.open(fileobj=stream, mode="w|") as tar,
            ):
                tar.add(staging, arcname=name, filter=_reset)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
