"""brainage_tf: brain age of children from one T1-weighted MRI (He et al., ISBI 2020).

Importing the package stays light: TensorFlow is imported only by the modules
that need it (models, data, train), never by preprocessing or ingest.
"""

__version__ = "0.1.0"
