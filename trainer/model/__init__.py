"""The networks and their files: the linear head and the paper's MLP, and the ``.safetensors`` model format that holds
weights plus JSON metadata and is checked in full before anything is built from it."""
