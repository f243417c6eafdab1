//! A signed call to the simulated gateway, as a client on the wire makes it.
#![allow(dead_code)] // each test file uses its own part

use chrono::Utc;
use coupang_sim::Simulator;
use etl_core::cea;
use serde_json::Value;

pub const VENDOR: &str = "A00010001";
pub const ACCESS: &str = "sim-access-a";
pub const SECRET: &str = "sim-secret-for-A00010001";

pub fn path(vendor: &str) -> String {
    format!("/v2/providers/openapi/apis/api/v5/vendors/{vendor}/ordersheets")
}

pub struct Call<'a> {
    pub path: String,
    pub query: &'a str,
    pub secret: &'a str,
    pub signed_at: chrono::DateTime<Utc>,
    pub separator: &'a str,
}

impl<'a> Call<'a> {
    pub fn new(query: &'a str) -> Self {
        Call { path: path(VENDOR), query, secret: SECRET, signed_at: Utc::now(), separator: ", " }
    }

    /// A call of `path` (any endpoint) with `query`.
    pub fn to(path: String, query: &'a str) -> Self {
        Call { path, ..Call::new(query) }
    }

    pub fn header(&self) -> String {
        let date = cea::signed_date(self.signed_at);
        let signature = cea::signature(self.secret, &date, "GET", &self.path, self.query);
        cea::authorization_header(ACCESS, &date, &signature).replace(", ", self.separator)
    }

    pub async fn send_with(&self, sim: &Simulator, header: &str) -> (u16, Value) {
        let url = format!("{}{}?{}", sim.base_url(), self.path, self.query);
        let response = reqwest::Client::new().get(url).header("Authorization", header).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, sim: &Simulator) -> (u16, Value) {
        self.send_with(sim, &self.header()).await
    }
}
