//! placeholder until the data helper lands
