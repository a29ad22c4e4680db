//! Integration tests against a real Prosody (installed on demand): the
//! checks of `common`, run on this server.

mod common;

common::server_tests!(Prosody);

/// `Options::http_upload`: the domain lists the upload service, which hands
/// out a slot on the loopback HTTP port; a PUT there stores the file and a
/// GET of the slot's other URL returns it.
#[test]
fn http_upload() {
    use std::io::{Read, Write};
    use xmpp_test_server::raw::RawClient;
    use xmpp_test_server::{Options, TestServer};

    let server = TestServer::start(Options {
        http_upload: true,
        ..Options::prosody()
    })
    .unwrap();
    let (service, http) = server.http_upload().unwrap();
    let (jid, password) = server.account("alice").unwrap();
    let mut c =
        RawClient::login(server.c2s_addr(), server.domain(), &jid, &password, None).unwrap();
    let items = c
        .iq(
            "i1",
            "<iq type='get' id='i1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
        )
        .unwrap();
    assert!(items.contains(service), "{items}");
    let slot = c
        .iq(
            "s1",
            &format!(
                "<iq type='get' id='s1' to='{service}'><request xmlns='urn:xmpp:http:upload:0' \
                 filename='a.xdc' size='5' content-type='application/octet-stream'/></iq>"
            ),
        )
        .unwrap();
    let url = |tag: &str| -> String {
        let at = slot
            .find(&format!("<{tag} url="))
            .unwrap_or_else(|| panic!("{slot}"));
        let rest = &slot[at + tag.len() + 7..];
        let end = rest.find(['\'', '"']).unwrap();
        rest[..end].replace("&amp;", "&")
    };
    let (put, get) = (url("put"), url("get"));
    // The PUT must carry the slot's Authorization header.
    let auth = slot
        .split_once("name='Authorization'>")
        .or_else(|| slot.split_once("name=\"Authorization\">"))
        .and_then(|(_, rest)| rest.split_once("</header>"))
        .map(|(value, _)| value.to_owned())
        .unwrap_or_else(|| panic!("no Authorization header in {slot}"));
    let prefix = format!("http://{http}/");
    assert!(
        put.starts_with(&prefix) && get.starts_with(&prefix),
        "{put} {get}"
    );

    let request = |method: &str, url: &str, body: &[u8], auth: &str| -> String {
        let path = &url[prefix.len() - 1..];
        let mut s = std::net::TcpStream::connect(http).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {http}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n{auth}\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    };
    let stored = request("PUT", &put, b"hello", &format!("Authorization: {auth}\r\n"));
    assert!(stored.starts_with("HTTP/1.1 201"), "{stored}");
    let got = request("GET", &get, b"", "");
    assert!(
        got.starts_with("HTTP/1.1 200") && got.ends_with("hello"),
        "{got}"
    );
    c.close();
}
