//! Developer (skill owner) enablement: one enabled stage per skill for the owner's account, so
//! enabling one stage disables the other, as Amazon does.

use crate::Stage;
use crate::reply::Reply;
use crate::state::Store;

fn not_enabled(skill_id: &str, stage: Stage) -> Reply {
    Reply::error(
        404,
        "NOT_FOUND",
        format!("Skill {skill_id} is not enabled for stage {stage}."),
    )
}

/// `PUT`: enables the stage (204), disabling the other one.
pub(crate) fn enable(store: &mut Store, skill_id: &str, stage: Stage) -> Reply {
    if let Some(skill) = store.skills.get_mut(skill_id) {
        skill.enabled_stage = Some(stage);
    }
    Reply::empty(204)
}

/// `GET`: 204 when enabled, 404 when not.
pub(crate) fn status(store: &Store, skill_id: &str, stage: Stage) -> Reply {
    match store.skills.get(skill_id) {
        Some(skill) if skill.enabled_stage == Some(stage) => Reply::empty(204),
        _ => not_enabled(skill_id, stage),
    }
}

/// `DELETE`: 204 when it was enabled, 404 when it was not.
pub(crate) fn disable(store: &mut Store, skill_id: &str, stage: Stage) -> Reply {
    match store.skills.get_mut(skill_id) {
        Some(skill) if skill.enabled_stage == Some(stage) => {
            skill.enabled_stage = None;
            Reply::empty(204)
        }
        _ => not_enabled(skill_id, stage),
    }
}
