"""BCC's tools on the pybpf library: each is `python -m pybpf.tools.NAME` and the console script
`pybpf-NAME`, with BCC's options and output columns. Each module's main(argv) is the whole tool,
and reads well as an example of the library (docs/library.md)."""
