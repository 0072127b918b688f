"""Face-alignment metrics (NME, FR, AUC, CED)."""
