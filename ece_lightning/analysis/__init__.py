"""Analysis of finished runs and sweeps, for notebooks and reports: result tables and curves
(``sweeps``), loss dynamics (``dynamics``), and CE-vs-ECE prediction pictures (``qualitative``).
Every function takes run or sweep directories as ``ece-train`` writes them (README, "Run outputs")."""
