"""What is run from a checkout beside the apps, one folder per reader:
ops/ (operators, also on servers), simulator/ (the course's simulator
side) and bench/ (benchmarks). Run each as `python -m scripts.FOLDER.NAME`
from the repository's root."""
