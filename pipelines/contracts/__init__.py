"""Feature contracts: the format, the loader and the validator with its readable report."""

from pipelines.contracts.loader import builtin_contract_path, contract_fingerprint, contract_yaml, load_contract
from pipelines.contracts.model import ColumnSpec, Contract
from pipelines.contracts.validate import ContractReport, Issue, validate_frame

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
