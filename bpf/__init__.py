"""The eBPF C programs bcc compiles at run time, shipped with hostcore as package data.

Installed as the import package ``_hostcore_bpf`` (pyproject.toml maps it to this
folder), so an editable install reads these files here and a wheel carries them.
"""
