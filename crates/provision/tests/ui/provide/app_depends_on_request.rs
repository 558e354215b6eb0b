// The second promise through the attribute: the boot-capture bug, an app
// service (built once, shared by every request) built from a request
// service (a connection).
use provision::{Dep, Error, provide};

struct Connection;

#[provide(Request)]
impl Connection {
    async fn build() -> Result<Self, Error> {
        Ok(Connection)
    }
}

struct UserStore;

#[provide(App)]
impl UserStore {
    async fn build(conn: Dep<Connection>) -> Result<Self, Error> {
        let _ = conn;
        Ok(UserStore)
    }
}

fn main() {}
