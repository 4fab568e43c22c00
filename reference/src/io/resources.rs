//! Placeholder until the shm library lands.
use std::os::fd::BorrowedFd;

use crate::core::{
    CtrlEvent, Faults, FdRef, ResourceError, SegmentId, SegmentSpec, WorkerKey, WorkerResources,
    WorkerResourcesReady,
};
use crate::wire::Profile;

pub struct Resources;

#[derive(Debug, thiserror::Error)]
#[error("resource error")]
pub struct ResError;

impl Resources {
    pub fn new(_threads: u8, _profile: Profile, _faults: Faults) -> Result<Self, ResError> {
        Ok(Resources)
    }
    pub fn vpp_mq_offset(&self, _thread: usize) -> Option<u64> {
        None
    }
    pub fn create_worker(
        &mut self,
        _key: WorkerKey,
        _spec: &WorkerResources,
    ) -> Result<WorkerResourcesReady, ResourceError> {
        Err(ResourceError::SegmentCreate)
    }
    pub fn create_segment(&mut self, _spec: &SegmentSpec) -> Result<u64, ResourceError> {
        Err(ResourceError::SegmentCreate)
    }
    pub fn post_ctrl_event(&mut self, _key: WorkerKey, _e: &CtrlEvent) -> Result<(), ResError> {
        Ok(())
    }
    pub fn free_segment(&mut self, _id: SegmentId) {}
    pub fn free_worker(&mut self, _key: WorkerKey) {}
    pub fn fd(&self, _f: FdRef) -> Option<BorrowedFd<'_>> {
        None
    }
    pub fn mq_occupancy(&self, _key: WorkerKey) -> Option<u32> {
        None
    }
}
