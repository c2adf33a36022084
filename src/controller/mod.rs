//! Controllers for the custom resources, and the machinery they share.
