//! BGP RIB: Adj-RIB-In, Loc-RIB with best path and multipath, Adj-RIB-Out, route reflection; pure.
