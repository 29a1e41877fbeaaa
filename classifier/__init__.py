"""taskrouter's classifier: keyword rules → embedding classifier → LLM classifier."""

from .data import Dataset, check_query, load_dataset
from .errors import ConfigError, DataError, LabelError, ModelFileError, QueryError, TaskRouterError
from .estimator import TaskClassifier

__all__ = ["ConfigError", "DataError", "Dataset", "LabelError", "ModelFileError", "QueryError",
           "TaskClassifier", "TaskRouterError", "check_query", "load_dataset"]
