//! In-process fake Kubernetes API server (see the crate description). Built in its own crate
//! so that the release binary can never contain it.
