"""Reading, computing and writing chained: what the commands and the batch call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reluth.core.context import Ctx
from reluth.dosimetry.case_dir import load_case
from reluth.dosimetry.outputs import write_outputs
from reluth.dosimetry.pipeline import compute_case
from reluth.errors import ReluthError, ValidationError
from reluth.i18n.reasons import moved


def _peek_case_id(case_dir: Path) -> str:
    """The case_id of case.yaml if it can be read, else the directory name (for messages)."""
    try:
        doc = yaml.safe_load((case_dir / "case.yaml").read_text(encoding="utf-8"))
        return str(doc.get("case_id") or case_dir.name)
    except (OSError, yaml.YAMLError, AttributeError):
        return case_dir.name


def run_case_dir(case_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Load, compute, write. A ValidationError names the case and the field."""
    case_dir = Path(case_dir)
    case_name = _peek_case_id(case_dir)
    try:
        case = load_case(case_dir)
        case_name = case.case_id
        result = compute_case(case)
        files = write_outputs(result, case, Path(out_dir))
    except ValidationError as exc:
        raise moved(exc, f"case {case_name}: {exc.field}") from None
    except ReluthError as exc:
        raise moved(exc, f"case {case_name}") from None
    return {
        "case_id": case.case_id,
        "out_dir": str(out_dir),
        "files": files,
        "warnings": result.summary["warnings"],
    }


def run_from_store(
    ctx: Ctx,
    store: Path,
    patient: str,
    cycle: int,
    out_dir: Path,
    **assemble_options: Any,
) -> dict[str, Any]:
    """Assemble a patient-cycle from the DICOM store (as ``ctx``'s actor), compute, write every output (RT Dose on
    the SPECT's frame of reference, registration overlays, report); the results document."""
    import json

    from reluth.dosimetry import registration, service

    progress = assemble_options.get("on_progress")
    sc = service.case_from_store(ctx, store, patient, cycle, **assemble_options)
    if progress:
        progress("computing doses")
    result = compute_case(sc.case)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overlays = {}
    for key, (fixed, before, after) in sc.qc.items():
        path = out_dir / f"{key}.png"
        registration.overlay_png(fixed, before, after, path, key.replace("_", " "))
        overlays[key] = path
    if progress:
        progress("writing outputs")
    write_outputs(
        result,
        sc.case,
        out_dir,
        reference_spect=sc.reference_spect,
        provenance=sc.provenance,
        overlays=overlays,
    )
    doc: dict[str, Any] = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    return doc
