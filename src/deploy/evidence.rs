//! Why a rollout failed, in ECS's own words: the telling service events since the start
//! (failures, rollbacks, health checks, placement), and the new revision's stopped tasks with
//! their stop codes, reasons and container exit codes.

use std::collections::HashSet;
use std::fmt::Write as _;

use aws_sdk_ecs::types::Task;

use super::Running;
use crate::aws::ecs;

/// Service events that only narrate (a task started or stopped, steady state).
pub fn is_narration(message: &str) -> bool {
    message.contains("has started")
        || message.contains("has stopped")
        || message.contains("steady state")
}

/// Evidence lines for a failed or rolled-back service.
pub async fn explain(client: &aws_sdk_ecs::Client, run: &Running) -> Vec<String> {
    let cfg = &run.prep.cfg;
    let mut evidence = Vec::new();
    let since = aws_smithy_types::DateTime::from(run.started).secs();
    if let Ok(Some(svc)) = ecs::find_service(client, &cfg.cluster, &cfg.service).await {
        let mut events: Vec<String> = svc
            .events()
            .iter()
            .filter(|e| e.created_at().is_some_and(|t| t.secs() >= since))
            .filter(|e| e.id().is_none_or(|id| !run.prep.known_events.contains(id)))
            .filter_map(|e| e.message())
            .filter(|m| !is_narration(m))
            .map(|m| format!("event: {m}"))
            .collect();
        events.truncate(10);
        events.reverse();
        evidence.extend(events);
    }
    let Some(new_td) = &run.new_td else {
        return evidence;
    };
    match ecs::stopped_tasks(client, &cfg.cluster, &cfg.service).await {
        Ok(tasks) => evidence.extend(stopped_task_lines(&tasks, new_td)),
        Err(e) => evidence.push(format!("could not read stopped tasks: {e:#}")),
    }
    evidence
}

/// One line per distinct way the new revision's tasks stopped (at most 5).
pub fn stopped_task_lines(tasks: &[Task], td: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut lines = Vec::new();
    for t in tasks.iter().filter(|t| t.task_definition_arn() == Some(td)) {
        let mut line = format!(
            "stopped task: {}{}",
            t.stopped_reason().unwrap_or("no reason given"),
            t.stop_code()
                .map(|c| format!(" ({})", c.as_str()))
                .unwrap_or_default()
        );
        for c in t.containers() {
            if c.exit_code().is_some() || c.reason().is_some() {
                let _ = write!(
                    line,
                    "; container {} exit {}{}",
                    c.name().unwrap_or("?"),
                    c.exit_code().map_or("?".into(), |x| x.to_string()),
                    c.reason().map(|r| format!(" ({r})")).unwrap_or_default()
                );
            }
        }
        if seen.insert(line.clone()) && seen.len() <= 5 {
            lines.push(line);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Container, TaskStopCode};

    fn task(td: &str, reason: &str, exit: Option<i32>) -> Task {
        Task::builder()
            .task_definition_arn(td)
            .stopped_reason(reason)
            .stop_code(TaskStopCode::EssentialContainerExited)
            .containers(Container::builder().name("web").set_exit_code(exit).build())
            .build()
    }

    #[test]
    fn one_line_per_distinct_stop_of_the_new_revision() {
        let tasks = vec![
            task("td:2", "Essential container in task exited", Some(1)),
            task("td:2", "Essential container in task exited", Some(1)),
            task("td:2", "Task failed container health checks", Some(137)),
            task("td:1", "Scaling activity initiated by deployment", None),
        ];
        assert_eq!(
            stopped_task_lines(&tasks, "td:2"),
            vec![
                "stopped task: Essential container in task exited (EssentialContainerExited); container web exit 1",
                "stopped task: Task failed container health checks (EssentialContainerExited); container web exit 137",
            ]
        );
    }

    #[test]
    fn narration_is_not_evidence() {
        assert!(is_narration(
            "(service api) has started 2 tasks: (task a) (task b)."
        ));
        assert!(!is_narration(
            "(service api) (task a) failed ELB health checks in (target-group tg)"
        ));
    }
}
