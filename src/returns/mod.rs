//! Returns: money sent back to the payers, as the credit-transfer file their bank executes.

pub mod pain001;
