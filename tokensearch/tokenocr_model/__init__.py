"""Token-level text-image models (official TokenOCR, embedded mini) behind one interface."""

from .interface import FeatureGrid, ModelInfo, QueryTokens, Token, TokenEncoder
from .registry import available_models, create_encoder

__all__ = ["FeatureGrid", "ModelInfo", "QueryTokens", "Token", "TokenEncoder", "available_models", "create_encoder"]
