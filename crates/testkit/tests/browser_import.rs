//! The CSV import in a real browser (see `browser_support` for the driver): a file with good
//! and bad rows uploaded from the people list, its progress bar followed to the end on the
//! job's page, the summary, and the report downloaded through the page's link.

#[macro_use]
mod browser_support;

use browser_support::*;
use usher_core::service::RunOptions;
use usher_server::imports::{spawn_import_worker, ImportWorkerOptions};

#[tokio::test]
async fn an_uploaded_file_is_followed_to_the_end_and_its_report_downloaded() {
    browser_test(|ctx| async move {
        let c = &ctx.c;
        log_in_as_admin(&ctx).await;
        c.goto(&ctx.app.url("/admin/users"))
            .await
            .expect("the list");
        click(c, "a[href='/admin/imports']").await;
        wait_for_path(c, "/admin/imports").await;
        assert_eq!(text_of(c, "main h1").await, "Import people from CSV");

        // 300 good rows, two bad ones, in a file on disk for the file input.
        let dir = std::env::temp_dir().join(format!("usher-browser-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut csv = String::from("userName,firstName,lastName,password,email\r\n");
        for i in 0..300 {
            let name: String = format!("{i:03}")
                .chars()
                .map(|d| (b'a' + (d as u8 - b'0')) as char)
                .collect();
            csv.push_str(&format!(
                "browser.{i},Abc{name},Def{name},,browser.{i}@example.org\r\n"
            ));
        }
        csv.push_str("x,Bad,Row,,bad@example.org\r\n");
        csv.push_str("=cmd,Evil,Row,,evil@example.org\r\n");
        let path = dir.join("staff.csv");
        std::fs::write(&path, csv).unwrap();
        find(c, "input[type=file][name=file]")
            .await
            .send_keys(&path.display().to_string())
            .await
            .expect("choose the file");
        click(c, "form[action='/admin/imports'] button[type=submit]").await;
        wait_for_path(c, "/admin/imports/").await;

        // No worker yet: the job waits, the bar at zero.
        assert_eq!(
            text_of(c, "[data-import-field=state_label]").await,
            "Queued"
        );
        assert_eq!(
            find(c, "progress")
                .await
                .attr("max")
                .await
                .unwrap()
                .as_deref(),
            Some("302")
        );
        assert_eq!(
            find(c, "progress")
                .await
                .attr("value")
                .await
                .unwrap()
                .as_deref(),
            Some("0")
        );

        // The worker starts; the page follows it and shows the summary at the end.
        let worker = spawn_import_worker(
            ctx.app.usher.clone(),
            ImportWorkerOptions {
                poll_interval: Duration::from_millis(200),
                run: RunOptions {
                    batch_size: Some(10),
                    ..RunOptions::default()
                },
                ..ImportWorkerOptions::for_node("browser-test".into())
            },
        );
        eventually!(
            "the summary",
            try_text(c, "#summary-heading").await.is_some()
        );
        let bar = find(c, "progress").await;
        assert_eq!(
            bar.attr("value").await.unwrap().as_deref(),
            Some("302"),
            "the bar reached the end"
        );
        assert_eq!(text_of(c, "[data-import-field=state_label]").await, "Done");
        let facts = text_of(c, "dl.facts").await;
        assert!(
            facts.contains("Created\n300") || facts.contains("Created 300"),
            "{facts}"
        );
        assert!(
            facts.contains("Failed\n2") || facts.contains("Failed 2"),
            "{facts}"
        );

        screenshot(c, "usher-import-summary.png").await;

        // The report, fetched through the page's own link with the admin's session.
        let href = find(c, "a[data-import-report]")
            .await
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        let report = c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 fetch(arguments[0], { credentials: 'same-origin' })
                   .then(r => r.text()).then(done, e => done('failed: ' + e));",
                vec![json!(href)],
            )
            .await
            .expect("fetch the report");
        let report = report.as_str().unwrap_or_default().to_owned();
        let lines: Vec<&str> = report.split_terminator("\r\n").collect();
        assert_eq!(lines[0], "line,username,field,severity,code,message");
        assert_eq!(lines.len(), 3, "{report}");
        assert!(
            lines[1].starts_with("302,x,userName,error,too_short,"),
            "{report}"
        );
        assert!(
            lines[2].starts_with("303,'=cmd,"),
            "a formula is neutralised: {report}"
        );

        // The list of past imports shows it.
        c.goto(&ctx.app.url("/admin/imports")).await.unwrap();
        let row = text_of(c, "table.imports tbody tr").await;
        assert!(row.contains("staff.csv") && row.contains("Done"), "{row}");
        screenshot(c, "usher-import-list.png").await;
        worker.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
