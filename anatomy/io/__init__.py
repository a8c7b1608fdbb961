"""Importers of external formats; one module per format. Importers return models; only
:mod:`anatomy.store` writes stores."""
