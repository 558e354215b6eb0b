// `settle` must be told how the request ended.
use provision::{Error, provide};

struct Tx;

#[provide(Request)]
impl Tx {
    async fn build() -> Result<Self, Error> {
        Ok(Tx)
    }

    async fn settle(&self) -> Result<(), Error> {
        Ok(())
    }
}

fn main() {}
