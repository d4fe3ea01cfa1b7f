"""Charlson comorbidity index from ICD-10 codes: Quan et al. 2005 (Med Care 43:1130) coding, Charlson 1987 weights.

Hand-written because the dependency budget of the CDS service allowed only `fhir.resources` and `pyjwt`; the
maintained implementation (`comorbidipy`, same coding) needs pandas frames per patient. A test holds this
table to Quan's published totals on known codes. Hierarchy as in Quan: a severe form replaces its mild one
(liver, diabetes, cancer), never both counted.
"""

from __future__ import annotations

from collections.abc import Iterable

# category -> (weight, ICD-10 codes and ranges without dots; a code matches a prefix it starts with)
QUAN_ICD10: dict[str, tuple[int, str]] = {
    "myocardial_infarction": (1, "I21 I22 I252"),
    "congestive_heart_failure": (1, "I099 I110 I130 I132 I255 I420 I425-I429 I43 I50 P290"),
    "peripheral_vascular": (1, "I70 I71 I731 I738 I739 I771 I790 I792 K551 K558 K559 Z958 Z959"),
    "cerebrovascular": (1, "G45 G46 H340 I60-I69"),
    "dementia": (1, "F00-F03 F051 G30 G311"),
    "chronic_pulmonary": (1, "I278 I279 J40-J47 J60-J67 J684 J701 J703"),
    "rheumatic": (1, "M05 M06 M315 M32-M34 M351 M353 M360"),
    "peptic_ulcer": (1, "K25-K28"),
    "mild_liver": (1, "B18 K700-K703 K709 K713-K715 K717 K73 K74 K760 K762-K764 K768 K769 Z944"),
    "diabetes": (1, " ".join(f"E1{d}0 E1{d}1 E1{d}6 E1{d}8 E1{d}9" for d in range(5))),
    "diabetes_complicated": (2, " ".join(f"E1{d}2-E1{d}5 E1{d}7" for d in range(5))),
    "hemiplegia": (2, "G041 G114 G801 G802 G81 G82 G830-G834 G839"),
    "renal": (2, "I120 I131 N032-N037 N052-N057 N18 N19 N250 Z490-Z492 Z940 Z992"),
    "malignancy": (2, "C00-C26 C30-C34 C37-C41 C43 C45-C58 C60-C76 C81-C85 C88 C90-C97"),
    "severe_liver": (3, "I850 I859 I864 I982 K704 K711 K721 K729 K765 K766 K767"),
    "metastatic_tumor": (6, "C77-C80"),
    "hiv_aids": (6, "B20-B22 B24"),
}
# A severe category present drops its milder one.
SUPERSEDES = {"severe_liver": "mild_liver", "diabetes_complicated": "diabetes", "metastatic_tumor": "malignancy"}


def _expand(spec: str) -> list[str]:
    out: list[str] = []
    for token in spec.split():
        if "-" not in token:
            out.append(token)
            continue
        low, high = token.split("-")
        letter, width = low[0], len(low) - 1
        if high[0] != letter or len(high) - 1 != width:
            raise ValueError(f"bad ICD-10 range {token}")
        out.extend(f"{letter}{n:0{width}d}" for n in range(int(low[1:]), int(high[1:]) + 1))
    return out


PREFIXES: dict[str, tuple[str, ...]] = {name: tuple(_expand(codes)) for name, (_, codes) in QUAN_ICD10.items()}


def normalize(code: str) -> str:
    return code.replace(".", "").strip().upper()


def categories(codes: Iterable[str]) -> set[str]:
    found = {name for code in map(normalize, codes) for name, prefixes in PREFIXES.items() if code.startswith(prefixes)}
    return found - {mild for severe, mild in SUPERSEDES.items() if severe in found}


def charlson_index(codes: Iterable[str]) -> int:
    return sum(QUAN_ICD10[name][0] for name in categories(codes))
