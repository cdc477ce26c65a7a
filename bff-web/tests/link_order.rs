//! `link/startup.order`, the code-layout list `build.rs` hands the linker: well formed (one symbol per line,
//! sorted, no duplicates — as `bench/orderfile` writes it) and covering the gateway's own start-up and
//! request path, not only the standard library's.

#[test]
fn the_startup_order_lists_symbols_of_our_request_path() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/link/startup.order"))
        .unwrap();
    let symbols: Vec<&str> = text.lines().collect();
    assert!(symbols.len() > 500, "only {} symbols", symbols.len());
    for symbol in &symbols {
        // Rust's two manglings (legacy `_ZN…17h<hash>E`, v0 `_R…`) and C names (the allocator, ring's code)
        let symbol_bytes = symbol
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.$".contains(&b));
        assert!(
            !symbol.is_empty() && symbol_bytes,
            "not a symbol: {symbol:?}"
        );
        if symbol.starts_with("_ZN") {
            // (`…17h<hash>E`, and LLVM's clones add a suffix: `…E.specialized.1`)
            assert!(
                symbol.contains("17h"),
                "not a legacy mangled name: {symbol}"
            );
        }
    }
    let rust = symbols
        .iter()
        .filter(|s| s.starts_with("_ZN") || s.starts_with("_R"))
        .count();
    assert!(
        rust * 10 > symbols.len() * 9,
        "{rust} of {} symbols are Rust's",
        symbols.len()
    );
    assert!(
        symbols.windows(2).all(|pair| pair[0] < pair[1]),
        "not sorted and unique"
    );
    // start-up (configuration, the CLI) and the request path (the edge, the HTTP/1.1 pool) of bff-core: a
    // function of the module (`8bff_core4edge…`), or one it is inlined into, named by a type of the module in
    // its generic arguments (`…bff_core..edge..Edge…`: with the PGO profile, the edge's own functions are
    // inlined into the layers around it)
    for (module, inlined) in [
        ("8bff_core6config", "bff_core..config.."),
        ("8bff_core3cli", "bff_core..cli.."),
        ("8bff_core4edge", "bff_core..edge.."),
        (
            "8bff_core10downstream6h1pool",
            "bff_core..downstream..h1pool..",
        ),
    ] {
        assert!(
            symbols
                .iter()
                .any(|s| s.contains(module) || s.contains(inlined)),
            "no symbol of {module}"
        );
    }
}
