"""``croissant.json``: the zoo described in Croissant 1.0 (MLCommons' JSON-LD for ML datasets).

Every file of the published folder is a ``cr:FileObject`` with its sha256; the two Parquet tables
are also ``cr:RecordSet``s whose fields are the tables' columns with their types, so tools that read
Croissant (``mlcroissant``, dataset search engines) can list and load the tables without modelzoo.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ..store import format as fmt

CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
ENCODINGS = {
    ".parquet": "application/x-parquet",
    ".h5": "application/x-hdf5",
    ".json": "application/json",
    ".md": "text/markdown",
    ".png": "image/png",
    ".yaml": "application/x-yaml",
}


def _data_type(arrow_type) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return "sc:Boolean"
    if pa.types.is_integer(arrow_type):
        return "sc:Integer"
    if pa.types.is_floating(arrow_type):
        return "sc:Float"
    return "sc:Text"


def croissant(folder: Path, manifest: dict, card: dict) -> dict:
    """The Croissant document for the published ``folder`` (every file in it is described)."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative in ("croissant.json", "SHA256SUMS"):
            continue
        files.append({
            "@type": "cr:FileObject",
            "@id": relative,
            "name": relative,
            "contentUrl": relative,
            "contentSize": f"{path.stat().st_size} B",
            "encodingFormat": ENCODINGS.get(path.suffix, "application/octet-stream"),
            "sha256": fmt.sha256_file(path),
        })  # fmt: skip
    record_sets = []
    for table in (fmt.MODELS_TABLE, fmt.METRICS_TABLE):
        name = table.removesuffix(".parquet")
        schema = pq.read_schema(folder / table)
        record_sets.append({
            "@type": "cr:RecordSet",
            "@id": name,
            "name": name,
            "description": "one row per model" if name == "models"
            else "one row per (model, stored epoch)",
            "field": [
                {
                    "@type": "cr:Field",
                    "@id": f"{name}/{column.name}",
                    "name": column.name,
                    "dataType": _data_type(column.type),
                    "source": {"fileObject": {"@id": table}, "extract": {"column": column.name}},
                }
                for column in schema
            ],
        })  # fmt: skip
    document = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": manifest["name"],
        "description": card["description"],
        "license": card["license_url"],
        "version": "1.0.0",
        "datePublished": str(manifest.get("updated", manifest.get("created", "")))[:10],
        "keywords": card["tags"],
        "creator": {"@type": "sc:Organization", "name": card.get("author") or "modelzoo"},
        "distribution": files,
        "recordSet": record_sets,
    }
    if card.get("url"):
        document["url"] = card["url"]
    if card.get("citation"):
        document["citeAs"] = card["citation"]
    return document
