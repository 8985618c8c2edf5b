"""The case report form registry (pure): the forms file beside the protocol (``forms.yaml``)
loaded into typed, immutable definitions and checked for consistency.

Every CRF the product stores is declared there — its table, fields (type, unit, range,
required, code list, allowed missing-data codes, help text), how a record finds its visit, and
the visits x forms matrix — so that correction, queries, missing-data codes and status are one
generic mechanism (ICH E6(R3) 4.2 and Appendix C: data collection tools specified before use;
CDISC ODM 1.3.2 FormDef / ItemGroupDef / ItemDef / CodeList carry the same facts).

People read the forms in their language: every label, help text, missing-data code and code of
a code list carries its texts by language (``label: {en: Sex, fr: Sexe}``; ODM 1.3.2
TranslatedText with ``xml:lang`` does the same), English being the source. The definitions
keep the English text in ``label``/``help`` (CLI tables, exports) and every language's in
``texts``; ``label_in(lang)`` and friends answer a language, falling back to English.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticError

from reluth.errors import NotFound, ValidationError
from reluth.i18n import N_, format_day, format_number, use_locale
from reluth.i18n.reasons import Joined, Reason, Translated, invalid_worded, read_back, refusal

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "protocol" / "forms.yaml"

FieldType = Literal[
    "date",
    "time",
    "decimal",
    "integer",
    "text",
    "textarea",
    "code",
    "boolean",
    "json",
    "items",
    "lesions",
]
#: The pseudo-visit of everything between screening and randomization.
BASELINE = "BASELINE"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: The source language of the texts (the one every text must have).
SOURCE_LANGUAGE = "en"

#: A text in each language it is written in: language code -> text.
Texts = dict[str, str]


def _texts(value: Any, where: str) -> Texts:
    """A text as the forms file gives it: a plain string (English only) or ``{en: .., fr: ..}``."""
    if isinstance(value, str):
        return {SOURCE_LANGUAGE: value}
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        if SOURCE_LANGUAGE not in value:
            raise ValueError(f"{where}: needs an {SOURCE_LANGUAGE!r} text (the source language)")
        return {str(k): v for k, v in value.items()}
    raise ValueError(f"{where}: a text or a mapping language -> text")


def _split_texts(data: Any, names: tuple[str, ...]) -> Any:
    """Move each translated attribute's texts to ``texts``, leaving its English in place."""
    if not isinstance(data, dict) or "texts" in data:
        return data
    data = dict(data)
    texts: dict[str, Texts] = {}
    for name in names:
        if data.get(name) is not None:
            texts[name] = _texts(data[name], name)
            data[name] = texts[name][SOURCE_LANGUAGE]
    data["texts"] = texts
    return data


def in_language(texts: Texts, lang: str | None) -> str:
    """The text in ``lang``, else in the source language."""
    return texts.get(lang or SOURCE_LANGUAGE) or texts[SOURCE_LANGUAGE]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Translated(_Frozen):
    """A definition whose ``label`` (and ``help``) are written in several languages."""

    texts: dict[str, Texts] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _translations(cls, data: Any) -> Any:
        return _split_texts(data, ("label", "help"))

    def label_in(self, lang: str | None) -> str:
        """The label in ``lang`` (English when it has no text in that language)."""
        label: str = getattr(self, "label")  # noqa: B009 - every subclass declares it
        return in_language(self.texts.get("label", {SOURCE_LANGUAGE: label}), lang)

    def named(self) -> Translated:
        """The definition by its label in each language it is written in (a refusal's value,
        shown in the reader's language)."""
        label: str = getattr(self, "label")  # noqa: B009 - every subclass declares it
        return Translated(tuple(self.texts.get("label", {SOURCE_LANGUAGE: label}).items()))

    def help_in(self, lang: str | None) -> str:
        help_text: str = getattr(self, "help", "")
        if not help_text:
            return ""
        return in_language(self.texts.get("help", {SOURCE_LANGUAGE: help_text}), lang)

    def languages(self) -> set[str]:
        """The languages every text of the definition is written in."""
        sets = [set(t) for t in self.texts.values()]
        return set.intersection(*sets) if sets else {SOURCE_LANGUAGE}


class FieldDef(_Translated):
    """One item of a form (ODM ItemDef)."""

    name: str
    label: str
    type: FieldType
    column: str | None = None  # column of the form's table, or child_table.column; None: not stored
    unit: str | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    required: bool = False
    codes: str | None = None
    missing: tuple[str, ...] = ()
    help: str = ""
    editable: bool = True
    derived: bool = False
    #: the policy resource a reader needs beyond the form's own to see this field (the arm of a
    #: randomization: ``arm``); None: whoever reads the form reads it
    resource: str | None = None

    @property
    def correctable(self) -> bool:
        return self.editable and not self.derived

    def label_for(self, row: Any, lang: str | None = None) -> str:
        """The label with the record's own values (``Value ({unit})`` -> ``Value (/mm3)``), in
        ``lang`` (English by default)."""
        label = self.label_in(lang)
        if "{" not in label:
            return label
        return re.sub(r"\{(\w+)\}", lambda m: str(getattr(row, m[1], m[0])), label)


class VisitRule(_Frozen):
    """How a record of the form finds its visit of the schedule."""

    by: Literal["column", "cycle", "date", "baseline", "event"]
    column: str | None = None
    prefix: str = ""
    kind: str | None = None  # for ``date``: the kind of visit whose window holds the date


class FormDef(_Translated):
    """One case report form (ODM FormDef) stored in ``table``."""

    id: str
    label: str
    table: str
    resource: str  # the policy resource its data belongs to (reluth.auth.policy.Resource)
    editable: bool = True
    treatment: bool = False  # reveals treatment: never for roles without read treatment
    single: bool = False  # at most one per patient (named by the patient alone)
    where: dict[str, str] = Field(default_factory=dict)  # rows of the table that are this form
    visits: VisitRule
    instruments: tuple[str, ...] = ()
    fields: tuple[FieldDef, ...]

    def cited(self) -> Translated:
        """The form as a refusal names it: by its id in the source language (what the CLI and
        the API take, as the English messages always named it), by its label in the others."""
        texts = dict(self.texts.get("label", {}))
        texts[SOURCE_LANGUAGE] = self.id
        return Translated(tuple(texts.items()))

    def not_a_field(self, name: str, field: str = "field") -> ValidationError:
        """``name`` is not one of this form's fields (naming ``field``, the input that gave it)."""
        return invalid_worded(
            field,
            "not_a_form_field",
            N_("{field}: '{name}' is not a field of form {form} (accepted: {accepted})"),
            f"{name!r} is not a field of form {self.id}",
            ", ".join(self.field_names),
            name=str(name),
            form=self.cited(),
            accepted=", ".join(self.field_names),
        )

    def field(self, name: str) -> FieldDef:
        for f in self.fields:
            if f.name == name:
                return f
        raise self.not_a_field(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def correctable(self) -> tuple[FieldDef, ...]:
        """The fields a correction may change (none on a form that is not editable)."""
        return tuple(f for f in self.fields if f.correctable) if self.editable else ()


class SdvRequirement(_Translated):
    """Records of ``form`` (those whose fields equal ``where``) that need 100 % SDV; its
    ``label`` says why, in each language (``{en: …, fr: …}``)."""

    form: str
    label: str
    where: dict[str, bool | int | str] = Field(default_factory=dict)


class SdvPlanDef(_Frozen):
    """The monitoring plan's SDV (ICH E6(R3) 3.11.4, risk-based): what is verified in full,
    and the fraction of the other records of the ``sampled`` forms picked for verification."""

    required: tuple[SdvRequirement, ...] = ()
    sample_fraction: Decimal = Decimal(0)
    sampled: tuple[str, ...] = ()


SignatureLevel = Literal["form", "visit", "casebook"]

#: The kinds of edit check the domain evaluates (reluth.queries.edit_checks):
#: ``lab_before``: the latest ``analyte`` result in the ``days`` before the form's date (that day
#: included) is below ``below`` (in ``unit``, compared exactly as a Decimal);
#: ``in_visit_window``: the form's date (``field``) is outside its visit's window;
#: ``required_when``: ``field`` is empty (and no missing-data code says why) on a record whose
#: fields equal ``when``.
EditRule = Literal["lab_before", "in_visit_window", "required_when"]


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL = re.compile(r"-?\d+\.\d+")


def _local_value(text: str) -> str:
    """A value as an English message wrote it (ISO day, decimal point), in the current
    language's way (dd/mm/yyyy, decimal comma in French); any other text as it is."""
    if _ISO_DAY.fullmatch(text):
        try:
            return format_day(dt.date.fromisoformat(text))
        except ValueError:
            return text
    if _DECIMAL.fullmatch(text):
        return format_number(Decimal(text))
    return text


class EditCheck(_Frozen):
    """A check of saved data that raises a system query on (form instance, ``field``) when it
    fails, with ``message`` (``{name}`` placeholders: the record's fields, and the rule's
    findings such as ``{lab_value}``, ``{lab_date}``, ``{window_start}``), written in each
    language (``{en: …, fr: …}``; the query stores the English)."""

    id: str
    form: str
    field: str
    rule: EditRule
    message: str
    texts: dict[str, Texts] = Field(default_factory=dict)
    analyte: str | None = None
    below: Decimal | None = None
    unit: str | None = None
    days: int | None = Field(default=None, ge=0, le=365)
    when: dict[str, bool | int | str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _translations(cls, data: Any) -> Any:
        return _split_texts(data, ("message",))

    def message_in(self, lang: str | None) -> str:
        return in_language(self.texts.get("message", {SOURCE_LANGUAGE: self.message}), lang)

    def question_in(self, stored: str, lang: str | None) -> str:
        """The question this check stored (its English ``message`` filled with the record's
        values) in ``lang``: the values read back from the stored text and written into that
        language's message (days dd/mm/yyyy, numbers with the language's decimal sign); the
        stored text as it is when it is not this check's English (a question edited since)."""
        if (lang or SOURCE_LANGUAGE) == SOURCE_LANGUAGE:
            return stored
        values = read_back(self.message, stored)
        if values is None:
            return stored
        with use_locale(lang):
            shown = {k: _local_value(v) for k, v in values.items()}
        return self.message_in(lang).format_map(shown)


class Registry(_Frozen):
    """Every form of the trial, its code lists, missing-data codes and visits x forms, the SDV
    plan, the meaning of each level of investigator signature and the edit checks."""

    id: str
    version: str
    protocol: dict[str, str]
    missing_codes: dict[str, str]
    code_lists: dict[str, tuple[str, ...]]
    forms: tuple[FormDef, ...]
    matrix: dict[str, tuple[str, ...]]
    not_forms: dict[str, str] = Field(default_factory=dict)
    sdv: SdvPlanDef = Field(default_factory=SdvPlanDef)
    #: What a signature of each level means (21 CFR 11.50(a)(3)), shown with it.
    signature_meanings: dict[SignatureLevel, str] = Field(default_factory=dict)
    edit_checks: tuple[EditCheck, ...] = ()
    #: the missing-data codes' labels by language (code -> texts)
    missing_texts: dict[str, Texts] = Field(default_factory=dict)
    #: the code lists' labels by language (list -> code -> texts); a code without is shown as is
    code_texts: dict[str, dict[str, Texts]] = Field(default_factory=dict)
    #: the signature meanings by language (level -> texts)
    signature_texts: dict[str, Texts] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _translations(cls, data: Any) -> Any:
        """``missing_codes: {ND: {en: not done, fr: non fait}}`` and code lists written as
        ``{code: {en: .., fr: ..}}`` (a plain list of codes when the codes need no label)."""
        if not isinstance(data, dict) or "missing_texts" in data:
            return data
        data = dict(data)
        missing = data.get("missing_codes")
        if isinstance(missing, dict):
            data["missing_texts"] = {
                str(c): _texts(t, f"missing_codes.{c}") for c, t in missing.items()
            }
            data["missing_codes"] = {
                c: t[SOURCE_LANGUAGE] for c, t in data["missing_texts"].items()
            }
        meanings = data.get("signature_meanings")
        if isinstance(meanings, dict):
            data["signature_texts"] = {
                str(level): _texts(t, f"signature_meanings.{level}")
                for level, t in meanings.items()
            }
            data["signature_meanings"] = {
                level: t[SOURCE_LANGUAGE] for level, t in data["signature_texts"].items()
            }
        lists = data.get("code_lists")
        if isinstance(lists, dict):
            data["code_texts"] = {
                str(name): {
                    str(code): _texts(t, f"code_lists.{name}.{code}") for code, t in codes.items()
                }
                for name, codes in lists.items()
                if isinstance(codes, dict)
            }
            data["code_lists"] = {
                name: tuple(str(c) for c in codes) for name, codes in lists.items()
            }
        return data

    def missing_label(self, code: str, lang: str | None) -> str:
        """A missing-data code's label in ``lang``."""
        return in_language(self.missing_texts.get(code, {SOURCE_LANGUAGE: code}), lang)

    def code_label(self, list_id: str, code: str, lang: str | None) -> str:
        """A code's label in ``lang``, from its code list (the code itself when it has none)."""
        texts = self.code_texts.get(list_id, {}).get(str(code))
        return in_language(texts, lang) if texts else str(code)

    @model_validator(mode="after")
    def _consistent(self) -> Registry:
        ids = [f.id for f in self.forms]
        self._check_lifecycle(ids)
        if len(set(ids)) != len(ids):
            raise ValueError("forms: form ids must differ")
        for form in self.forms:
            if not _NAME.match(form.id):
                raise ValueError(f"forms.{form.id}: id must be lower_snake_case")
            names = form.field_names
            if len(set(names)) != len(names):
                raise ValueError(f"forms.{form.id}: field names must differ")
            for f in form.fields:
                where = f"forms.{form.id}.{f.name}"
                if not _NAME.match(f.name):
                    raise ValueError(f"{where}: name must be lower_snake_case")
                if f.codes is not None and f.codes not in self.code_lists:
                    raise ValueError(f"{where}: unknown code list {f.codes!r}")
                if f.type == "code" and f.codes is None:
                    raise ValueError(f"{where}: a code field needs a code list")
                for code in f.missing:
                    if code not in self.missing_codes:
                        raise ValueError(f"{where}: unknown missing-data code {code!r}")
                if f.min is not None and f.max is not None and f.min > f.max:
                    raise ValueError(f"{where}: min above max")
            rule = form.visits
            if rule.by in ("column", "cycle", "date") and rule.column is None:
                raise ValueError(f"forms.{form.id}.visits: '{rule.by}' needs a column")
            if rule.column is not None and not any(f.column == rule.column for f in form.fields):
                raise ValueError(f"forms.{form.id}.visits: column {rule.column!r} is no field's")
        for visit, forms in self.matrix.items():
            for fid in forms:
                if fid not in ids:
                    raise ValueError(f"matrix.{visit}: unknown form {fid!r}")
        return self

    def _check_lifecycle(self, ids: list[str]) -> None:
        plan = self.sdv
        if not Decimal(0) <= plan.sample_fraction <= Decimal(1):
            raise ValueError("sdv.sample_fraction: between 0 and 1")
        for req in plan.required:
            if req.form not in ids:
                raise ValueError(f"sdv.required: unknown form {req.form!r}")
            names = self.form(req.form).field_names
            for name in req.where:
                if name not in names:
                    raise ValueError(f"sdv.required.{req.form}: {name!r} is no field of it")
        for fid in plan.sampled:
            if fid not in ids:
                raise ValueError(f"sdv.sampled: unknown form {fid!r}")
        seen: set[str] = set()
        for check in self.edit_checks:
            where = f"edit_checks.{check.id}"
            if not _NAME.match(check.id) or check.id in seen:
                raise ValueError(f"{where}: ids must be lower_snake_case and differ")
            seen.add(check.id)
            if check.form not in ids:
                raise ValueError(f"{where}: unknown form {check.form!r}")
            wanted = set(re.findall(r"\{(\w+)\}", check.message))
            for lang, text in check.texts.get("message", {}).items():
                if set(re.findall(r"\{(\w+)\}", text)) != wanted:
                    raise ValueError(f"{where}.message.{lang}: other placeholders than in English")
            names = self.form(check.form).field_names
            for name in (check.field, *check.when):
                if name not in names:
                    raise ValueError(f"{where}: {name!r} is no field of {check.form}")
            needs = {
                "lab_before": ("analyte", "below", "unit", "days"),
                "required_when": ("when",),
                "in_visit_window": (),
            }[check.rule]
            for attr in needs:
                if not getattr(check, attr) and getattr(check, attr) != 0:
                    raise ValueError(f"{where}: rule {check.rule} needs {attr}")
        for level in ("form", "visit", "casebook"):
            if not self.signature_meanings.get(level, "").strip():
                raise ValueError(f"signature_meanings.{level}: a meaning is required")

    def question_in(self, check_id: str | None, stored: str, lang: str | None) -> str:
        """A data query's question in ``lang``: a system query's (raised by edit check
        ``check_id``) from that check's message in the language; any other as it was asked."""
        for check in self.edit_checks if check_id else ():
            if check.id == check_id:
                return check.question_in(stored, lang)
        return stored

    def signature_meaning(self, scope: str, lang: str | None = None) -> str:
        """What a signature of ``scope`` (form, visit, or patient: the casebook) means, in
        ``lang`` (the signer's: the meaning is signed as the signer reads it; English by
        default)."""
        level = "casebook" if scope == "patient" else scope
        english: str = self.signature_meanings[level]  # type: ignore[index]
        return in_language(self.signature_texts.get(level, {SOURCE_LANGUAGE: english}), lang)

    def form(self, form_id: str) -> FormDef:
        """The form ``form_id`` (NotFound naming the known ones)."""
        for f in self.forms:
            if f.id == form_id:
                return f
        raise refusal(
            NotFound,
            "form_not_registered",
            N_("form '{form}' is not registered (forms: {forms})"),
            form=str(form_id),
            forms=", ".join(self.form_ids),
        )

    @property
    def form_ids(self) -> tuple[str, ...]:
        return tuple(f.id for f in self.forms)

    def forms_of_table(self, table: str) -> tuple[FormDef, ...]:
        return tuple(f for f in self.forms if f.table == table)

    def forms_at(self, visit_kind: str) -> tuple[FormDef, ...]:
        """The forms a visit of ``visit_kind`` (a schedule kind, or BASELINE) expects."""
        return tuple(self.form(fid) for fid in self.matrix.get(visit_kind, ()))

    def codes(self, list_id: str) -> tuple[str, ...]:
        return self.code_lists[list_id]

    def missing_code(self, form: FormDef, field: str | None, code: str) -> str:
        """Check a missing-data code for a field (or, with ``field`` None, a whole form at a
        visit: any code); its label. ValidationError naming the field and the allowed codes."""
        allowed = tuple(self.missing_codes) if field is None else form.field(field).missing
        if code not in allowed:
            target = form.id if field is None else f"{form.id}.{field}"
            codes = tuple(
                Reason(
                    "missing.code",
                    N_("{code} ({label})"),
                    {
                        "code": c,
                        "label": Translated(
                            tuple(self.missing_texts.get(c, {SOURCE_LANGUAGE: c}).items())
                        ),
                    },
                )
                for c in allowed
            )
            raise invalid_worded(
                "code",
                "not_accepted",
                N_("{field}: “{value}” is not one of the accepted answers ({accepted})"),
                f"{code!r} is not a missing-data code allowed for {target}",
                ", ".join(f"{c} ({self.missing_codes[c]})" for c in allowed) or "none",
                value=str(code),
                accepted=Joined(codes, ", ") if codes else "—",
            )
        return self.missing_codes[code]


def table_named(table: str, registry: Registry | None = None) -> Translated | str:
    """A table by the label of the one form stored in it, in each language (a refusal's or the
    audit trail's value); the table's name when no form, or several, are stored there."""
    forms = (registry or load_registry()).forms_of_table(table)
    return forms[0].named() if len(forms) == 1 else table


def parse_registry(data: Any, source: str = "forms") -> Registry:
    try:
        return Registry.model_validate(data)
    except PydanticError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValidationError(f"{source}: {loc}" if loc else source, first["msg"]) from None


@functools.cache
def _load_cached(path: str) -> Registry:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(
            path, N_("forms file not found"), N_("a YAML forms registry")
        ) from None
    except yaml.YAMLError as exc:
        raise ValidationError(
            path,
            f"malformed YAML: {exc}",
            "YAML",
            code="malformed_yaml",
            params={"line": getattr(getattr(exc, "problem_mark", None), "line", -1) + 1},
        ) from None
    return parse_registry(data, source=path)


def load_registry(path: str | Path | None = None) -> Registry:
    """The forms registry; the shipped one unless ``path`` names another file."""
    return _load_cached(str(path or DEFAULT_PATH))


def forms_path_for(protocol_file: str | Path | None) -> Path:
    """The forms file versioned with a protocol file: ``forms.yaml`` beside it when there is
    one (an amendment shipped as a directory), else the shipped registry."""
    if protocol_file is not None:
        beside = Path(protocol_file).with_name("forms.yaml")
        if beside.is_file():
            return beside
    return DEFAULT_PATH


def check_protocol(registry: Registry, protocol_id: str, protocol_version: str) -> None:
    """The forms were written for this protocol (id and version), else a ValidationError."""
    want = {"id": protocol_id, "version": protocol_version}
    if registry.protocol != want:
        raise ValidationError(
            "forms.protocol",
            f"written for {registry.protocol}, the protocol is {want}",
            "the forms file versioned with the protocol",
            code="forms_of_another_protocol",
            params={"written": str(registry.protocol), "protocol": str(want)},
        )
