//! Kernel FIB programming over rtnetlink: reconcile our routes toward the wanted set.
