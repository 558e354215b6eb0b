// A lifetime provision does not have.
use provision::{Error, provide};

struct Session;

#[provide(Session)]
impl Session {
    async fn build() -> Result<Self, Error> {
        Ok(Session)
    }
}

fn main() {}
