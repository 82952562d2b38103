//! Palisade server library: everything the `palisade-server` binary runs, exposed so tests
//! and benchmarks can build the same router and store in-process.

pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod console;
pub mod distribution;
pub mod domain;
pub mod engine;
pub mod enrich;
pub mod error;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod lookup;
pub mod manage;
pub mod redis_link;
pub mod reputation;
pub mod serving;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod use_case;
