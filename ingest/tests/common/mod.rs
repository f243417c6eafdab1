//! What the client's tests against the simulator share.

use coupang_sim::config::SimVendor;
use etl_core::secret::Secret;

/// A simulated vendor whose key never expires and is accepted from any address.
pub fn vendor(vendor_id: &str) -> SimVendor {
    SimVendor {
        vendor_id: vendor_id.into(),
        access_key: format!("access-{vendor_id}"),
        secret_key: Secret::new(format!("secret-{vendor_id}")),
        key_issued_on: None,
        allowed_ips: Vec::new(),
    }
}
