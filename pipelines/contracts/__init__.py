"""Feature contracts: the format, the loader and the validator with its readable report."""

from pipelines.contracts.loader import builtin_contract_path, contract_fingerprint, contract_yaml, load_contract
from pipelines.contracts.model import ColumnSpec, Contract

_VALIDATION = ("ContractReport", "Issue", "validate_frame")


def __getattr__(name: str) -> object:
    # The validator needs pandas (~1 s to import); the Pulumi program only reads contracts, so load it on use.
    if name in _VALIDATION:
        from pipelines.contracts import validate

        return getattr(validate, name)
    raise AttributeError(f"module 'pipelines.contracts' has no attribute {name!r}")


__all__ = [
    "ColumnSpec",
    "Contract",
    "ContractReport",
    "Issue",
    "builtin_contract_path",
    "contract_fingerprint",
    "contract_yaml",
    "load_contract",
    "validate_frame",
]
