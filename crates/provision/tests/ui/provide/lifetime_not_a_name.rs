// The lifetime is a type's name, not a string.
use provision::{Error, provide};

struct Conn;

#[provide("request")]
impl Conn {
    async fn build() -> Result<Self, Error> {
        Ok(Conn)
    }
}

fn main() {}
