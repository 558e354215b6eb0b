// The source documents' boot-capture bug: an app service (built once, shared
// by every request) depends on a request service (a connection).
use provision::{App, Dep, Error, Provide, Request};

struct Connection;

impl Provide for Connection {
    type Lifetime = Request;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Ok(Connection)
    }
}

struct UserStore;

impl Provide for UserStore {
    type Lifetime = App;
    type Deps = (Connection,);
    async fn build(_: (Dep<Connection>,)) -> Result<Self, Error> {
        Ok(UserStore)
    }
}

fn main() {}
